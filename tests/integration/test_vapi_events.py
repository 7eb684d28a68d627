"""VAPI's server URL (`POST /v1/vapi/events`) through the real ingress app, against the real
Kafka broker and Redis: every auth mode, the exact answer of each message type, the
assistant-request greeting (the brain's, or the fallback by the deadline), dedupe of retried
events, barge-in and end-of-call signals, 503 when Kafka does not acknowledge, and hostile
bodies. The verifiers, the answers and the transient assistant are also checked without the
app (unit tests at the end)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis.asyncio import Redis
from structlog.testing import capture_logs

from services.channels.sdk.identity import default_conversation_id
from services.channels.sdk.plugin import ChannelPlugin, IngressContext
from services.channels.sdk.publish import ChannelPublisher, PublishFailed
from services.channels.vapi import auth
from services.channels.vapi.answers import FUNCTION_RESULT, NO_HANDOFF, TOOL_ERROR, answer_for
from services.channels.vapi.assistant import greeting_text, transient_assistant
from services.channels.vapi.events import VapiEvents
from services.channels.vapi.payloads import PayloadError, parse_message, tool_call
from services.channels.vapi.profile import NAME, vapi_profile
from services.channels.vapi.settings import EVENTS_PATH, VapiSettings
from services.channels.vapi.store import VapiCalls
from services.common.inbox import InboxWriter
from services.ingress.config import IngressSettings
from services.ingress.identity import IdentityResolver
from services.ingress.main import create_app
from shared.contracts import Channel, IdentityRealm, InboundMessage, MessageKind
from shared.contracts.inbox import HeldAnswer
from tests.support import vapi as golden
from tests.support.hostile import MARKER, dumps, json_cases
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.ops import RecordingOps

integration = pytest.mark.integration
unit = pytest.mark.unit

SECRET = "integration-vapi-secret-0123456789"
PUBLIC = "https://sb.example.org"
HANDOFF = "+15550001111"
CALLER = golden.CALLER


def vapi_settings(**overrides: Any) -> VapiSettings:
    values: dict[str, Any] = {"server_secret": SecretStr(SECRET), "public_base_url": PUBLIC}
    return VapiSettings(**{**values, **overrides})


def vapi_plugin(settings: VapiSettings, window_ms: int) -> ChannelPlugin:
    """The VAPI inbound side as the registry will build it: the events endpoint, answered
    greetings through the inbox."""

    def build(ctx: IngressContext) -> VapiEvents:
        events = VapiEvents(
            settings=settings,
            publisher=ctx.publisher_for(NAME, vapi_profile()),
            identity=ctx.identity,
            calls=VapiCalls(ctx.redis, ctx.settings.redis_prefix),
            ops=ctx.ops,
            instance_id=ctx.settings.instance_id,
            barge_in_window_ms=window_ms,
        )
        ctx.inbox.on(HeldAnswer, events.on_held_answer)
        return events

    return ChannelPlugin(name=NAME, build_inbound=build)


class Vapi:
    """Sends what VAPI sends to one in-process ingress with only the VAPI channel."""

    def __init__(self, client: TestClient, ingress: IngressSettings, settings: VapiSettings):
        self.client = client
        self.ingress = ingress
        self.settings = settings

    def send(
        self, payload: Any, *, headers: dict[str, str] | None = None, sign: bool = True
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json"}
        if sign:
            sent |= auth.sign(self.settings, body)
        sent |= headers or {}
        return self.client.post(EVENTS_PATH, content=body, headers=sent)

    async def inbound(
        self, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        return await read_topic(
            self.ingress.kafka_bootstrap_servers, self.ingress.topics.inbound, until, timeout_s
        )

    async def inbound_until_call(self, call_id: str) -> list[dict[str, Any]]:
        """Everything published up to (and with) the first message of `call_id`."""
        return await self.inbound(lambda evs: any(e["address"] == call_id for e in evs))

    async def ops_failures(self, count: int) -> list[dict[str, Any]]:
        events = await read_topic(
            self.ingress.kafka_bootstrap_servers,
            self.ingress.topics.ops,
            lambda evs: len(_failures(evs)) >= count,
            timeout_s=20.0,
        )
        return _failures(events)

    def control(self) -> str:
        """A barge-in of a fresh call: published, and the marker that ends a topic read."""
        the_call = golden.call()
        assert self.send(golden.message("user-interrupted", the_call)).status_code == 200
        return str(the_call["id"])


def _failures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("step") == "failed" and e.get("channel") == NAME]


@contextmanager
def running(infra: Infra, namespace: str, window_ms: int = 1, **overrides: Any) -> Iterator[Vapi]:
    """An ingress with the VAPI channel. `window_ms` 1: the barge-in throttle is out of the
    way, so a dropped repeat can only be the dedupe."""
    ingress = IngressSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        topic_partitions=1,  # one partition: the topic's order is the order of publishing
        instance_id=f"ingress-{namespace}",
        public_base_url=PUBLIC,
    )
    settings = vapi_settings(**overrides)
    app = create_app(ingress, channels=[vapi_plugin(settings, window_ms)])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Vapi(client, ingress, settings)


@pytest.fixture
def vapi(infra: Infra, namespace: str) -> Iterator[Vapi]:
    with running(infra, namespace, handoff_number=HANDOFF, greeting_deadline_s=1.0) as app:
        yield app


# -- authentication ------------------------------------------------------------------------

AUTH_MODES = {
    "secret": {},
    "bearer": {"auth_mode": "bearer"},
    "bearer_bare_in_x_vapi_secret": {
        "auth_mode": "bearer",
        "auth_header": "X-Vapi-Secret",
        "bearer_prefix": False,
    },
    "hmac": {"auth_mode": "hmac"},
    "hmac_sha512_base64_prefixed_body_only": {
        "auth_mode": "hmac",
        "hmac_algorithm": "sha512",
        "hmac_encoding": "base64",
        "hmac_prefix": "v1=",
        "hmac_payload": "{body}",
    },
}


@integration
@pytest.mark.asyncio
@pytest.mark.parametrize("mode", list(AUTH_MODES))
async def test_each_auth_mode_accepts_its_credential_and_refuses_forged_missing_or_stale(
    infra: Infra, namespace: str, mode: str
) -> None:
    overrides = AUTH_MODES[mode]
    with running(infra, namespace, **overrides) as vapi:
        refused = golden.message("user-interrupted")
        body = json.dumps(refused).encode()
        other_key = auth.sign(vapi_settings(**{**overrides, "server_secret": "other"}), body)
        attempts = {
            "missing": vapi.send(body, sign=False),
            "forged": vapi.send(body, sign=False, headers=other_key),
            "empty": vapi.send(body, sign=False, headers=dict.fromkeys(other_key, "")),
        }
        signs_body = vapi.settings.auth_mode == "hmac"
        if signs_body:
            tampered = json.dumps(golden.message("user-interrupted", refused["message"]["call"]))
            attempts["tampered"] = vapi.send(
                tampered.encode(), sign=False, headers=auth.sign(vapi.settings, body)
            )
        if "{timestamp}" in vapi.settings.hmac_payload and signs_body:
            stale = auth.sign(vapi.settings, body, at=time.time() - 3600)
            attempts["stale"] = vapi.send(body, sign=False, headers=stale)
            future = auth.sign(vapi.settings, body, at=time.time() + 3600, millis=True)
            attempts["future_ms"] = vapi.send(body, sign=False, headers=future)
        for name, response in attempts.items():
            assert response.status_code == 401, (name, response.text)
            assert response.json()["detail"]["error"].isidentifier(), name

        accepted = []
        if "{timestamp}" in vapi.settings.hmac_payload and signs_body:
            # The unit is undocumented: a timestamp in milliseconds is read as such.
            in_ms = golden.message("user-interrupted")
            in_ms_body = json.dumps(in_ms).encode()
            headers = auth.sign(vapi.settings, in_ms_body, millis=True)
            assert vapi.send(in_ms_body, sign=False, headers=headers).status_code == 200
            accepted.append(in_ms["message"]["call"]["id"])
        control = vapi.control()
        events = await vapi.inbound_until_call(control)
        assert [e["address"] for e in events] == [*accepted, control]


# -- answers -------------------------------------------------------------------------------


@integration
@pytest.mark.asyncio
async def test_every_answering_type_gets_its_exact_answer_and_publishes_nothing(
    vapi: Vapi,
) -> None:
    tools = vapi.send(golden.tool_calls())
    assert tools.status_code == 200
    assert tools.json() == {
        "results": [
            {"toolCallId": "call_schema", "name": "lookup_order", "error": TOOL_ERROR},
            {"toolCallId": "call_object", "name": "x", "error": TOOL_ERROR},
            {"toolCallId": "call_doc", "name": "check_weather", "error": TOOL_ERROR},
        ]
    }
    wrapped_only = golden.tool_calls()
    del wrapped_only["message"]["toolCallList"]
    assert vapi.send(wrapped_only).json() == tools.json()
    odd = golden.message(
        "tool-calls", toolCallList=[{"function": {"name": "no_id"}}, "x", {"id": "t1"}]
    )
    assert vapi.send(odd).json() == {
        "results": [{"toolCallId": "t1", "name": "", "error": TOOL_ERROR}]
    }
    function = golden.message("function-call", functionCall={"name": "f", "parameters": {}})
    assert vapi.send(function).json() == {"result": FUNCTION_RESULT}
    destination = {"destination": {"type": "number", "number": HANDOFF, "message": ""}}
    assert vapi.send(golden.message("handoff-destination-request")).json() == destination
    assert vapi.send(golden.message("transfer-destination-request")).json() == destination

    informational = [
        golden.status_update("in-progress"),
        golden.message("speech-update", role="assistant", status="started"),
        golden.message("speech-update", role="user", status="stopped"),
        golden.message("conversation-update", messages=[], messagesOpenAIFormatted=[]),
        golden.message('transcript[transcriptType="final"]', role="user", transcript=MARKER),
        golden.message("assistant.started"),
        golden.message("some-type-vapi-adds-next-year", anything={"at": "all"}),
        # VAPI Chat events come without a call: nothing to do.
        {"message": {"type": "status-update", "status": "ended", "timestamp": 1}},
        {"message": {"type": "hang", "call": None}},
    ]
    for payload in informational:
        response = vapi.send(payload)
        assert (response.status_code, response.json()) == (200, {}), payload["message"]["type"]

    control = vapi.control()
    events = await vapi.inbound_until_call(control)
    assert [e["address"] for e in events] == [control]


# -- assistant-request ---------------------------------------------------------------------


@integration
@pytest.mark.asyncio
async def test_assistant_request_answers_the_fallback_by_its_deadline_when_nobody_greets(
    vapi: Vapi, redis: Redis
) -> None:
    # Kafka first: the greeting must not be this namespace's first publish, which on a busy
    # machine (the cluster lane beside three others) outlasted the 1 s deadline, so the
    # greeting was abandoned before the broker had it (the fallback was still right).
    await vapi.inbound_until_call(vapi.control())
    the_call = golden.call()
    request = golden.message("assistant-request", the_call)
    started = time.monotonic()
    response = vapi.send(request)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    # The handler answers a margin before the deadline; the rest is the test client's.
    assert elapsed < vapi.settings.greeting_deadline_s + 0.5
    assert response.json() == {
        "assistant": {
            "name": "Switchboard",
            "firstMessage": vapi.settings.fallback_greeting,
            "firstMessageMode": "assistant-speaks-first",
            "model": {
                "provider": "custom-llm",
                "url": f"{PUBLIC}/v1/vapi/llm",
                "model": "switchboard",
                "metadataSendMode": "variable",
            },
            "modelOutputInMessagesEnabled": False,
            "server": {"url": f"{PUBLIC}{EVENTS_PATH}", "headers": {"X-Vapi-Secret": SECRET}},
        }
    }
    # VAPI retries it: answered at once, from the fallback, and the brain is not asked again.
    started = time.monotonic()
    again = vapi.send(request)
    assert time.monotonic() - started < vapi.settings.greeting_deadline_s
    assert again.json()["assistant"]["firstMessage"] == vapi.settings.fallback_greeting
    # Without a call there is nobody to greet by name.
    no_call = vapi.send({"message": {"type": "assistant-request", "timestamp": 5}})
    assert no_call.json()["assistant"]["firstMessage"] == vapi.settings.fallback_greeting

    control = vapi.control()
    events = await vapi.inbound_until_call(control)
    assert [e["kind"] for e in events] == ["partial_transcript", "greeting", "partial_transcript"]
    greeting = events[1]
    call_id = the_call["id"]
    assert greeting["provider_message_id"] == f"{call_id}:greeting"
    assert greeting["address"] == call_id
    assert greeting["channel"] == NAME
    # The caller's phone conversation: one memory with their texts and other calls.
    assert greeting["conversation_id"] == default_conversation_id(Channel.SMS, CALLER)
    assert greeting["reply"]["kind"] == "sync"
    assert greeting["reply"]["correlation_id"] == f"{call_id}:greeting"
    assert greeting["reply"]["reply_to"] == vapi.ingress.instance_id
    record = await VapiCalls(redis, vapi.ingress.redis_prefix).get(call_id)
    assert record.conversation_id == greeting["conversation_id"]
    assert record.caller == CALLER
    assert record.control_url == the_call["monitor"]["controlUrl"]


@integration
@pytest.mark.asyncio
async def test_assistant_request_answers_the_brains_greeting_when_it_comes_in_time(
    infra: Infra, namespace: str, redis: Redis
) -> None:
    with running(infra, namespace) as vapi:  # the default deadline (5 s)
        the_call = golden.call()
        text = "Hello Ann, welcome back! Is this about order A1?"
        answer = HeldAnswer(
            correlation_id=f"{the_call['id']}:greeting", body=json.dumps({"text": text})
        )
        other = HeldAnswer(correlation_id="a-voipbin-fetch", body="[]")
        inbox = InboxWriter(redis, vapi.ingress.redis_prefix)
        pending = asyncio.ensure_future(
            asyncio.to_thread(vapi.send, golden.message("assistant-request", the_call))
        )
        # Egress's entry comes once the brain has answered; until the request is held an
        # entry is dropped as unknown, so it is rung until the request returns.
        while not pending.done():
            await inbox.post(vapi.ingress.instance_id, other)
            await inbox.post(vapi.ingress.instance_id, answer)
            await asyncio.wait([pending], timeout=0.1)
        response = pending.result()
        assert response.status_code == 200
        assert response.json()["assistant"]["firstMessage"] == text
        assert response.json()["assistant"]["modelOutputInMessagesEnabled"] is False


# -- dedupe, barge-in, end of call ---------------------------------------------------------


@integration
@pytest.mark.asyncio
async def test_a_retried_event_is_published_once(vapi: Vapi) -> None:
    the_call = golden.call()
    interrupted = golden.message("user-interrupted", the_call, turnId="t-1")
    assert [vapi.send(interrupted).json() for _ in range(3)] == [{}, {}, {}]
    # A later barge-in of the same call (another timestamp) is a new signal.
    later = golden.message(
        "user-interrupted", the_call, timestamp=interrupted["message"]["timestamp"] + 5000
    )
    assert vapi.send(later).status_code == 200
    control = vapi.control()
    events = await vapi.inbound_until_call(control)
    call_id = the_call["id"]
    assert [e["provider_message_id"] for e in events] == [
        f"{call_id}:interrupt:{interrupted['message']['timestamp']}",
        f"{call_id}:interrupt:{later['message']['timestamp']}",
        f"{control}:interrupt:{events[-1]['provider_message_id'].rsplit(':', 1)[1]}",
    ]
    assert {e["kind"] for e in events} == {"partial_transcript"}


@integration
@pytest.mark.asyncio
async def test_speech_and_interruption_of_one_barge_in_are_one_signal(
    infra: Infra, namespace: str
) -> None:
    with running(infra, namespace, window_ms=60_000) as vapi:
        the_call = golden.call()
        started = golden.message("speech-update", the_call, role="user", status="started")
        interrupted = golden.message(
            "user-interrupted", the_call, timestamp=1 + started["message"]["timestamp"]
        )
        for payload in (started, interrupted):
            assert vapi.send(payload).json() == {}
        control = vapi.control()
        events = await vapi.inbound_until_call(control)
        call_id = the_call["id"]
        assert [(e["kind"], e["provider_message_id"]) for e in events[:-1]] == [
            ("partial_transcript", f"{call_id}:interrupt:{started['message']['timestamp']}")
        ]
        assert events[0]["text"] == ""
        assert events[0]["profile"]["interruptible"] is True


@integration
@pytest.mark.asyncio
async def test_the_end_of_a_call_is_one_call_ended_and_a_custom_llm_failure_alerts(
    vapi: Vapi, redis: Redis
) -> None:
    reason = "pipeline-error-custom-llm-llm-failed"
    the_call = golden.call()
    ended = golden.status_update("ended", the_call, endedReason=reason)
    report = golden.end_of_call_report(the_call, reason)
    for payload in (ended, ended, report, report):
        response = vapi.send(payload)
        assert (response.status_code, response.json()) == (200, {})
    # Once the call is over, the caller's speech stops nothing.
    late = golden.message("user-interrupted", the_call)
    assert vapi.send(late).status_code == 200
    # An ordinary end: no alert.
    plain = golden.call()
    assert vapi.send(golden.end_of_call_report(plain)).status_code == 200
    hung = golden.call()
    assert vapi.send(golden.message("hang", hung)).json() == {}

    events = await vapi.inbound_until_call(plain["id"])
    assert [(e["kind"], e["provider_message_id"]) for e in events] == [
        ("call_ended", f"{the_call['id']}:ended"),
        ("call_ended", f"{plain['id']}:ended"),
    ]
    calls = VapiCalls(redis, vapi.ingress.redis_prefix)
    record = await calls.get(the_call["id"])
    assert (record.ended, record.ended_reason) == (True, reason)
    assert (await calls.get(plain["id"])).ended_reason == "customer-ended-call"

    failures = await vapi.ops_failures(2)
    conversation = default_conversation_id(Channel.SMS, CALLER)
    assert [(f["reason"], f["conversation_id"]) for f in failures] == [
        (f"vapi:{reason}", conversation),
        ("vapi:hang", conversation),
    ]


@integration
@pytest.mark.asyncio
async def test_kafka_not_acknowledging_is_a_503_and_the_retry_is_published(
    redis: Redis, namespace: str
) -> None:
    kafka = FlakyKafka()
    events = direct_events(redis, namespace, kafka)
    app = FastAPI()
    app.include_router(events.router())
    transport = httpx.ASGITransport(app=app)
    settings = events_settings()
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

        async def send(payload: Any) -> httpx.Response:
            body = json.dumps(payload).encode()
            return await client.post(EVENTS_PATH, content=body, headers=auth.sign(settings, body))

        the_call, other_call = golden.call(), golden.call()
        report = golden.end_of_call_report(the_call)
        interrupted = golden.message("user-interrupted", other_call)
        kafka.down = True
        down = [await send(report), await send(interrupted)]
        assert [r.status_code for r in down] == [503, 503]
        assert down[0].json()["detail"]["error"] == "unavailable"
        # assistant-request is answered anyway, at once, with the fallback.
        greeting = await send(golden.message("assistant-request"))
        assert greeting.status_code == 200
        assert greeting.json()["assistant"]["firstMessage"] == settings.fallback_greeting

        kafka.down = False
        # The retries are handled (not dropped as duplicates, nor throttled), once.
        for payload in (report, report, interrupted, interrupted):
            assert (await send(payload)).status_code == 200
        assert [(m.kind, m.address) for m in kafka.published] == [
            (MessageKind.CALL_ENDED, the_call["id"]),
            (MessageKind.PARTIAL_TRANSCRIPT, other_call["id"]),
        ]
        # The call is over: the caller's speech stops nothing.
        assert (await send(golden.message("user-interrupted", the_call))).status_code == 200
        assert len(kafka.published) == 2


class FlakyKafka:
    """Stands in for the `InboundPublisher`: refuses while `down`, else records."""

    def __init__(self) -> None:
        self.down = False
        self.published: list[InboundMessage] = []

    async def publish(self, message: InboundMessage) -> None:
        if self.down:
            raise PublishFailed("KafkaTimeoutError")
        self.published.append(message)


def events_settings() -> VapiSettings:
    return vapi_settings(greeting_deadline_s=1.0)


def direct_events(redis: Redis, prefix: str, kafka: FlakyKafka) -> VapiEvents:
    ops = RecordingOps()
    identity = IdentityResolver(redis, prefix, "US")
    identity.declare(NAME, IdentityRealm.PHONE)
    return VapiEvents(
        settings=events_settings(),
        publisher=ChannelPublisher(NAME, vapi_profile(), kafka, ops),  # type: ignore[arg-type]
        identity=identity,
        calls=VapiCalls(redis, prefix),
        ops=ops,  # type: ignore[arg-type]
        instance_id=f"ingress-{prefix}",
    )


# -- hostile input ---------------------------------------------------------------------------

HOSTILE_GOLDENS = {
    "end_of_call_report": lambda: golden.end_of_call_report(golden.call()),
    "tool_calls": golden.tool_calls,
}


@integration
@pytest.mark.parametrize("name", list(HOSTILE_GOLDENS))
def test_hostile_bodies_are_refused_never_a_5xx(
    infra: Infra, namespace: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with running(infra, namespace) as vapi, capture_logs() as logged:
        problems = []
        for case in json_cases(HOSTILE_GOLDENS[name], golden.ENVELOPE_FIELDS, name):
            response = vapi.send(case.body)
            status = response.status_code
            if status >= 500 or (case.must_refuse and not 400 <= status < 500):
                problems.append(f"{case.name}: {status} {response.text[:120]!r}")
            elif status >= 400:
                detail = response.json()["detail"]
                if not str(detail.get("error", "")).isidentifier() or MARKER in response.text:
                    problems.append(f"{case.name}: bad error {response.text[:120]!r}")
        assert not problems, "\n".join(problems[:30])
    text = repr(logged) + caplog.text
    assert not [leak for leak in (MARKER, CALLER, SECRET, "Traceback") if leak in text]


# -- without the app (unit) -----------------------------------------------------------------


@unit
@pytest.mark.parametrize("mode", list(AUTH_MODES))
def test_signed_headers_verify_and_anything_else_does_not(mode: str) -> None:
    settings = vapi_settings(**AUTH_MODES[mode])
    verifier = auth.verifier_for(settings)
    body = b'{"message": {"type": "hang", "note": "{timestamp}.{body}"}}'
    now = time.time()
    assert verifier.verify(auth.sign(settings, body, at=now), body, now) is None
    assert verifier.verify({}, body, now) == "missing_credential"
    forged = auth.sign(vapi_settings(**AUTH_MODES[mode], server_secret="x"), body, at=now)
    assert verifier.verify(forged, body, now) == "bad_credential"
    # Bytes no client would send compare (and fail) instead of raising.
    weird = dict.fromkeys(forged, "\u00ff\u00fe" + MARKER)
    assert verifier.verify(weird, body, now) in ("bad_credential", "bad_timestamp")


@unit
def test_hmac_timestamps_in_seconds_or_milliseconds_within_the_tolerance() -> None:
    settings = vapi_settings(auth_mode="hmac", hmac_tolerance_s=60)
    verifier = auth.verifier_for(settings)
    body = b"{}"
    now = 1_787_000_000.0
    for at, millis in ((now, False), (now, True), (now - 59, True), (now + 59, False)):
        assert verifier.verify(auth.sign(settings, body, at=at, millis=millis), body, now) is None
    for at, millis in ((now - 61, False), (now + 61, True)):
        headers = auth.sign(settings, body, at=at, millis=millis)
        assert verifier.verify(headers, body, now) == "stale_timestamp"
    headers = auth.sign(settings, body, at=now)
    for bad in ("", "soon", "1e9", "-5", "9" * 30):
        assert verifier.verify({**headers, "x-timestamp": bad}, body, now) == "bad_timestamp"
    assert auth.parse_timestamp("1787000000") == 1_787_000_000
    assert auth.parse_timestamp("1787000000123") == pytest.approx(1_787_000_000.123)
    assert auth.parse_timestamp("2026-08-20T10:00:00Z") == auth.parse_timestamp(
        "2026-08-20T10:00:00+00:00"
    )


@unit
def test_hmac_templates_sign_the_raw_body_once_and_refuse_unknown_placeholders() -> None:
    verifier = auth.HmacVerifier("k", payload="{method} {url} {body}", url="https://x/e")
    body = b'{"a": "{url}"}'
    import hashlib
    import hmac as hmac_lib

    expected = hmac_lib.new(b"k", b"POST https://x/e " + body, hashlib.sha256).hexdigest()
    assert verifier.signature(body, "") == expected
    assert verifier.verify({"x-signature": expected.upper()}, body, 0.0) is None
    with pytest.raises(ValueError, match="unsupported placeholders"):
        auth.HmacVerifier("k", payload="{svix-id}.{body}")
    with pytest.raises(ValueError, match="timestamp header"):
        auth.HmacVerifier("k", timestamp_header="")
    bearer = auth.BearerVerifier("tok")
    assert bearer.verify({"Authorization": "bearer  tok "}, b"", 0.0) is None
    assert bearer.verify({"Authorization": "Basic tok"}, b"", 0.0) == "bad_credential"
    assert bearer.verify({"Authorization": "tok"}, b"", 0.0) == "bad_credential"


@unit
def test_the_answers_without_a_handoff_number() -> None:
    settings = vapi_settings()
    handoff = parse_message(dumps(golden.message("handoff-destination-request")))
    assert answer_for(handoff, settings) == {"error": NO_HANDOFF}
    assert answer_for(parse_message(dumps(golden.message("hang"))), settings) is None


@unit
def test_tool_calls_are_read_in_every_shape_vapi_sends() -> None:
    assert tool_call({"id": "a", "function": {"name": "f", "arguments": '{"x": 1}'}}) == (
        tool_call({"id": "a", "name": "f", "parameters": {"x": 1}})
    )
    parsed = tool_call({"id": "a", "function": {"name": "f", "arguments": "not json"}})
    assert parsed is not None and parsed.arguments == {}
    assert tool_call({"id": "a" * 65, "name": "f"}) is None
    assert tool_call({"id": 7}) is None


@unit
@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"[]", "not_an_object", None),
        (b'{"message": []}', "invalid_field", "message"),
        (b'{"message": {}}', "missing_field", "message.type"),
        (b'{"message": {"type": 1}}', "invalid_field", "message.type"),
        (b'{"message": {"type": "hang", "timestamp": true}}', "invalid_field", "message.timestamp"),
        (b'{"message": {"type": "hang", "timestamp": {}}}', "invalid_field", "message.timestamp"),
        (b'{"message": {"type": "hang", "call": {"id": 5}}}', "invalid_field", "message.call.id"),
        (b'{"message": {"type": "hang", "call": "x"}}', "invalid_field", "message.call"),
        (b'{"message": {"type": "tool-calls", "toolCallList": {}}}', "invalid_field", None),
    ],
)
def test_messages_that_are_refused(body: bytes, code: str, field: str | None) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_message(body)
    assert caught.value.code == code
    if field:
        assert caught.value.field == field


@unit
def test_ended_reasons_vapi_does_not_send_are_not_repeated() -> None:
    the_call = golden.call()
    odd = parse_message(dumps(golden.status_update("ended", the_call, endedReason=MARKER)))
    assert odd.ended_reason == "unrecognized"
    ok = parse_message(dumps(golden.status_update("ended", the_call, endedReason="voicemail")))
    assert ok.ended_reason == "voicemail"
    assert ok.dedupe_key == f"{the_call['id']}:status-update:{ok.timestamp}"


@unit
def test_the_transient_assistant_keeps_vapi_authenticating_to_us() -> None:
    hmac_settings = vapi_settings(auth_mode="hmac")
    assistant = transient_assistant(hmac_settings, "Hi")["assistant"]
    assert "server" not in assistant  # the phone number's server (it just authenticated)
    assistant = transient_assistant(hmac_settings, "Hi", "cred-1")["assistant"]
    assert assistant["server"] == {"url": f"{PUBLIC}{EVENTS_PATH}", "credentialId": "cred-1"}
    configured = vapi_settings(auth_mode="bearer", server_credential_id="cred-2", voice="Elliot")
    assistant = transient_assistant(configured, "Hi", "cred-1")["assistant"]
    assert assistant["server"]["credentialId"] == "cred-2"
    assert assistant["voice"] == {"provider": "vapi", "voiceId": "Elliot"}
    bearer = transient_assistant(vapi_settings(auth_mode="bearer"), "Hi")["assistant"]
    assert bearer["server"]["headers"] == {"Authorization": f"Bearer {SECRET}"}
    request = golden.message(
        "assistant-request", phoneNumber={"server": {"url": "x", "credentialId": "cred-3"}}
    )
    assert parse_message(dumps(request)).credential_id == "cred-3"


@unit
def test_a_held_answer_is_text_or_nothing() -> None:
    assert greeting_text(json.dumps({"text": "  Hello there. "})) == "Hello there."
    for body in ("[]", "not json", json.dumps({"text": ""}), json.dumps({"text": 5})):
        assert greeting_text(body) is None
