"""VoipbinClient against the fake VoIPBin over real HTTP: how it authenticates, parses VoIPBin's
error envelope, retries, and keeps the accesskey out of exceptions and logs."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from pydantic import SecretStr, ValidationError

from services.channels.voipbin.client import VoipbinClient
from services.channels.voipbin.errors import VoipbinError, VoipbinUnreachable
from services.channels.voipbin.fake import FakeVoipbinConfig, FakeVoipbinServer
from services.channels.voipbin.settings import VoipbinSettings
from services.common.backoff import RetryPolicy
from services.egress.config import EgressSettings

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

KEY = "unit-client-accesskey-5c1e9d"
FAST = RetryPolicy(max_attempts=5, base_s=0.001, cap_s=0.01, budget_s=10)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeVoipbinServer]:
    server = FakeVoipbinServer(FakeVoipbinConfig(access_key=SecretStr(KEY))).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(fake: FakeVoipbinServer) -> None:
    fake.reset()


def settings_for(api_base: str, key: str = KEY) -> VoipbinSettings:
    return VoipbinSettings(voipbin_api_base=api_base, voipbin_access_key=SecretStr(key))


@pytest.fixture
def sent() -> list[httpx2.Request]:
    """Requests as they left the client (headers included)."""
    return []


@pytest_asyncio.fixture
async def client(
    fake: FakeVoipbinServer, sent: list[httpx2.Request]
) -> AsyncIterator[VoipbinClient]:
    async def remember(request: httpx2.Request) -> None:
        sent.append(request)

    http = httpx2.AsyncClient(timeout=5.0, event_hooks={"request": [remember]})
    voipbin = VoipbinClient(settings_for(fake.api_base), retry=FAST, http=http)
    yield voipbin
    await voipbin.aclose()


async def test_the_accesskey_goes_in_the_query_never_as_a_bearer_header(
    fake: FakeVoipbinServer, client: VoipbinClient, sent: list[httpx2.Request]
) -> None:
    call = fake.add_call()
    assert (await client.get_call(call["id"]))["id"] == call["id"]
    [recorded] = fake.requests("GET", "/calls/")
    assert recorded["auth"] == "accesskey"  # the fake saw ?accesskey=, not a token
    assert recorded["status"] == 200
    [request] = sent
    assert request.url.params["accesskey"] == KEY
    assert "authorization" not in {name.lower() for name in request.headers}


async def test_the_error_envelope_is_parsed(fake: FakeVoipbinServer, client: VoipbinClient) -> None:
    with pytest.raises(VoipbinError) as caught:
        await client.get_call(str(uuid.uuid4()))
    error = caught.value
    assert (error.status, error.reason) == (404, "RESOURCE_NOT_FOUND")
    assert error.not_found and not error.retryable and not error.state_invalid
    assert "was not found" in error.message
    assert len(fake.requests()) == 1  # a 404 is not retried


async def test_409_before_the_call_is_answered_is_state_invalid_and_not_retried(
    fake: FakeVoipbinServer, client: VoipbinClient
) -> None:
    call = fake.add_call(status="ringing")
    with pytest.raises(VoipbinError) as caught:
        await client.create_speaking(call["id"], "en-US", "elevenlabs")
    assert caught.value.state_invalid and caught.value.reason == "STATE_INVALID"
    assert caught.value.status == 409
    assert len(fake.requests("POST", "/speakings")) == 1


async def test_a_429_is_retried_after_retry_after(
    fake: FakeVoipbinServer, client: VoipbinClient
) -> None:
    call = fake.add_call()
    fake.configure(fail_next=1, fail_status=429, retry_after=1)
    started = time.monotonic()
    speaking = await client.create_speaking(call["id"], "en-US", "elevenlabs")
    elapsed = time.monotonic() - started
    assert speaking["status"] == "initiating"  # 201, as VoIPBin answers
    statuses = [r["status"] for r in fake.requests("POST", "/speakings")]
    assert statuses == [429, 201]
    # The policy alone would wait at most 10 ms: the second try waited for Retry-After.
    assert elapsed >= 0.9


async def test_5xx_answers_are_retried(fake: FakeVoipbinServer, client: VoipbinClient) -> None:
    call = fake.add_call()
    fake.configure(fail_next=2, fail_status=503)
    await client.talk(call["id"], "Hello there.", "en-US")
    assert [r["status"] for r in fake.requests("POST", "/calls/")] == [503, 503, 200]
    assert [e["text"] for e in fake.speech_log(call["id"])] == ["Hello there."]


async def test_retries_stop_after_max_attempts(
    fake: FakeVoipbinServer, client: VoipbinClient
) -> None:
    call = fake.add_call()
    fake.configure(fail_next=50, fail_status=500)
    with pytest.raises(VoipbinError) as caught:
        await client.hangup(call["id"])
    assert caught.value.retryable and caught.value.status == 500
    assert len(fake.requests()) == FAST.max_attempts


async def test_the_key_is_absent_from_errors(fake: FakeVoipbinServer) -> None:
    wrong = VoipbinClient(settings_for(fake.api_base, "wrong-" + KEY), retry=FAST)
    with pytest.raises(VoipbinError) as refused:
        await wrong.get_customer()
    await wrong.aclose()
    assert refused.value.reason == "INVALID_CREDENTIALS" and refused.value.status == 401
    assert KEY not in str(refused.value) and KEY not in repr(refused.value)

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    nowhere = VoipbinClient(settings_for(f"http://127.0.0.1:{closed}/v1.0"), retry=FAST)
    with pytest.raises(VoipbinUnreachable) as unreachable:
        await nowhere.get_call(str(uuid.uuid4()))
    await nowhere.aclose()
    assert "/calls/" in str(unreachable.value)
    assert KEY not in str(unreachable.value)
    assert unreachable.value.__cause__ is None and unreachable.value.__suppress_context__


async def test_an_error_message_quoting_the_request_is_masked() -> None:
    def echo(request: httpx2.Request) -> httpx2.Response:
        envelope = {"status": "INVALID_ARGUMENT", "reason": "INVALID_ARGUMENT"}
        envelope["message"] = f"bad request {request.url}"
        return httpx2.Response(400, json={"error": envelope})

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(echo))
    client = VoipbinClient(settings_for("https://api.example/v1.0"), retry=FAST, http=http)
    with pytest.raises(VoipbinError) as caught:
        await client.say(str(uuid.uuid4()), "hi")
    await client.aclose()
    assert "bad request https://api.example/v1.0/speakings/" in caught.value.message
    assert KEY not in str(caught.value)


async def test_request_lines_in_logs_carry_no_key(
    fake: FakeVoipbinServer, client: VoipbinClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # An earlier configure_logging() (any CLI test) quiets these loggers to WARNING.
    for name in ("httpx", "httpx2"):
        caplog.set_level(logging.DEBUG, logger=name)
    call = fake.add_call()
    fake.configure(fail_next=1, fail_status=502)
    await client.get_call(call["id"])
    assert "HTTP Request: GET" in caplog.text  # httpx2's request line was captured...
    assert "accesskey=***" in caplog.text
    assert KEY not in caplog.text  # ...without the key


async def test_session_calls_use_voipbins_wire_format(
    fake: FakeVoipbinServer, client: VoipbinClient
) -> None:
    call = fake.add_call()
    transcribe = await client.create_transcribe(call["id"], "en-US")
    speaking = await client.create_speaking(call["id"], "en-US", "elevenlabs", "voice-1")
    await client.say(speaking["id"], "One.")
    await client.flush(speaking["id"])
    assert (await client.get_speaking(speaking["id"]))["status"] == "active"
    await client.stop_speaking(speaking["id"])
    await client.stop_transcribe(transcribe["id"])
    bodies: dict[str, Any] = {
        r["path"].removeprefix("/v1.0"): r["body"] for r in fake.requests("POST")
    }
    assert bodies["/transcribes"] == {
        "reference_type": "call",
        "reference_id": call["id"],
        "language": "en-US",
        "direction": "in",
    }
    assert bodies["/speakings"]["direction"] == "out"  # the caller hears it
    assert bodies["/speakings"]["voice_id"] == "voice-1"
    assert bodies[f"/speakings/{speaking['id']}/say"] == {"text": "One."}
    assert [e["op"] for e in fake.speech_log(call["id"])] == ["say", "flush", "stop"]
    assert fake.transcribe(transcribe["id"])["status"] == "done"
    assert KEY not in json.dumps(fake.requests())  # the fake strips it; bodies never had it


async def test_egress_in_production_refuses_the_development_accesskey(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHBOARD_ENV", "production")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "t" * 32)
    with pytest.raises(ValidationError, match="VOIPBIN_ACCESS_KEY"):
        EgressSettings()
    monkeypatch.setenv("VOIPBIN_ACCESS_KEY", KEY)
    # Egress receives no webhooks: the webhook secret and fetch token are not its business.
    assert EgressSettings().voipbin_access_key.get_secret_value() == KEY
