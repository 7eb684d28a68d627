"""VoIPBin's event webhook and `fetch` action through the real ingress app, against the real
Kafka broker and Redis, with the fake VoIPBin API for lookups: signatures, dedupe, reordered
events, barge-in signals, the fetch token, and the fetch fallback when no brain answers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.channels.voipbin.fake import (
    FakeVoipbinServer,
    speech_data,
    transcript_data,
    validate_action_array,
)
from services.channels.voipbin.settings import EVENTS_PATH, FETCH_PATH
from services.channels.voipbin.signature import sign_body
from services.ingress.config import IngressSettings
from services.ingress.identity import default_conversation_id
from services.ingress.main import create_app
from shared.contracts import Channel
from tests.support.infra import Infra
from tests.support.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SECRET = "integration-voipbin-secret-000000"
TOKEN = "integration-fetch-token-" + "x" * 16
PUBLIC = "https://sb.example.org"
CALLER = "+14155550123"


class Voipbin:
    """Sends what VoIPBin sends to one in-process ingress, with the fake API behind it."""

    def __init__(self, client: TestClient, settings: IngressSettings, fake: FakeVoipbinServer):
        self.client = client
        self.settings = settings
        self.fake = fake

    def event(
        self, event_type: str, data: dict[str, Any], *, signature: str | None = None, sign=True
    ) -> Any:
        body = json.dumps({"type": event_type, "data": data}).encode()
        headers = {"Content-Type": "application/json"}
        if sign:
            headers["X-Voipbin-Signature"] = signature or sign_body(SECRET, body)
        return self.client.post(EVENTS_PATH, content=body, headers=headers)

    def fetch(self, call_id: str, *, token: str = TOKEN, query: str = "") -> Any:
        body = {"activeflow_id": str(uuid.uuid4()), "reference_id": call_id}
        url = f"{FETCH_PATH}/{token}" + (f"?{query}" if query else "")
        return self.client.post(url, json=body)

    def call(self, status: str = "progressing") -> dict[str, Any]:
        return self.fake.add_call(source=CALLER, status=status)  # type: ignore[arg-type]

    async def inbound(self, until: Any, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        return await read_topic(
            self.settings.kafka_bootstrap_servers,
            self.settings.topics.inbound,
            until,
            timeout_s=timeout_s,
        )


@pytest.fixture
def voipbin(infra: Infra, namespace: str) -> Iterator[Voipbin]:
    with FakeVoipbinServer() as fake:
        settings = IngressSettings(
            kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
            redis_url=infra.redis_url,
            topic_namespace=namespace,
            redis_prefix=namespace,
            topic_partitions=2,
            instance_id=f"ingress-{namespace}",
            public_base_url=PUBLIC,
            voipbin_api_base=fake.api_base,
            voipbin_access_key=SecretStr(fake.access_key),
            voipbin_webhook_secret=SecretStr(SECRET),
            voipbin_fetch_token=SecretStr(TOKEN),
            voipbin_fetch_deadline_s=1.0,
        )
        with TestClient(create_app(settings)) as client:
            yield Voipbin(client, settings, fake)


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["provider_message_id"] for e in events]


async def test_call_progressing_opens_the_callers_phone_conversation(voipbin: Voipbin) -> None:
    call = voipbin.call()
    response = voipbin.event("call_progressing", call)
    assert response.status_code == 200, response.text
    [event] = await voipbin.inbound(lambda evs: len(evs) >= 1)
    assert event["kind"] == "call_started"
    assert event["channel"] == "voice"
    assert event["address"] == call["id"]
    # The same conversation the caller's texts land in: one memory per customer.
    assert event["conversation_id"] == default_conversation_id(Channel.SMS, CALLER)


async def test_forged_or_missing_signatures_get_401_and_publish_nothing(voipbin: Voipbin) -> None:
    call = voipbin.call()
    forged = voipbin.event("call_progressing", call, signature="sha256=" + "0" * 64)
    missing = voipbin.event("call_progressing", call, sign=False)
    other_key = voipbin.event(
        "call_progressing", call, signature=sign_body("another-secret", b"{}")
    )
    assert [r.status_code for r in (forged, missing, other_key)] == [401, 401, 401]
    control = voipbin.call()
    assert voipbin.event("call_progressing", control).status_code == 200
    events = await voipbin.inbound(lambda evs: len(evs) >= 1)
    assert [e["address"] for e in events] == [control["id"]]


async def test_a_duplicated_transcript_is_one_turn_even_before_its_mapping_is_known(
    voipbin: Voipbin,
) -> None:
    call = voipbin.call()
    # The transcribe session exists at VoIPBin, but no event or egress told ingress about it:
    # the transcript comes first, and ingress asks the API whose transcribe it is.
    transcribe = voipbin.fake.state.create_transcribe(call["id"], {"language": "en-US"})
    data = transcript_data(transcribe["id"], "Where is my order?")
    first = voipbin.event("transcript_created", data)
    again = voipbin.event("transcript_created", data)
    assert first.json() == {"status": "turn"}
    assert again.json() == {"status": "duplicate"}
    ignored = voipbin.event(
        "transcript_created", transcript_data(transcribe["id"], "our own words", direction="out")
    )
    assert ignored.json() == {"status": "ignored"}
    [event] = await voipbin.inbound(lambda evs: len(evs) >= 1)
    assert event["kind"] == "text"
    assert event["text"] == "Where is my order?"
    assert event["address"] == call["id"]
    assert event["provider_message_id"] == f"transcript:{data['id']}"
    lookups = voipbin.fake.requests("GET", f"/transcribes/{transcribe['id']}")
    assert len(lookups) == 1


async def test_an_unknown_transcribe_session_is_a_200_and_nothing_is_published(
    voipbin: Voipbin,
) -> None:
    response = voipbin.event("transcript_created", transcript_data(str(uuid.uuid4()), "hello?"))
    assert response.status_code == 200
    assert response.json() == {"status": "unknown_call"}
    control = voipbin.call()
    voipbin.event("call_progressing", control)
    events = await voipbin.inbound(lambda evs: len(evs) >= 1)
    assert [e["kind"] for e in events] == ["call_started"]


async def test_speech_events_become_one_barge_in_signal_per_window(voipbin: Voipbin) -> None:
    call = voipbin.call()
    transcribe = voipbin.fake.state.create_transcribe(call["id"], {"language": "en-US"})
    outcomes = [
        voipbin.event("transcribe_speech_started", speech_data(transcribe["id"])).json(),
        voipbin.event(
            "transcribe_speech_interim", speech_data(transcribe["id"], message="wait")
        ).json(),
    ]
    assert outcomes == [{"status": "barge_in"}, {"status": "throttled"}]
    events = await voipbin.inbound(lambda evs: len(evs) >= 1)
    assert [e["kind"] for e in events] == ["partial_transcript"]


async def test_callers_with_a_withheld_number_never_share_a_conversation(
    voipbin: Voipbin,
) -> None:
    first = voipbin.fake.add_call(source="anonymous", status="progressing")
    second = voipbin.fake.add_call(source="anonymous", status="progressing")
    for call in (first, second):
        assert voipbin.event("call_progressing", call).status_code == 200
    events = await voipbin.inbound(lambda evs: len(evs) >= 2)
    assert {e["conversation_id"] for e in events} == {
        f"conv_call_{first['id']}",
        f"conv_call_{second['id']}",
    }


async def test_a_sip_caller_keeps_one_conversation_across_calls(voipbin: Voipbin) -> None:
    calls = [voipbin.fake.add_call(source="alice@example.org", status="progressing") for _ in "ab"]
    for call in calls:
        assert voipbin.event("call_progressing", call).status_code == 200
    events = await voipbin.inbound(lambda evs: len(evs) >= 2)
    [conversation] = {e["conversation_id"] for e in events}
    assert conversation.startswith("conv_") and not conversation.startswith("conv_call_")
    assert conversation != default_conversation_id(Channel.SMS, CALLER)


async def test_hangup_ends_the_call_and_its_next_fetch_hangs_up(voipbin: Voipbin) -> None:
    call = voipbin.call()
    voipbin.fake.set_call_status(call["id"], "hangup")
    assert voipbin.event("call_hangup", voipbin.fake.call(call["id"])).json() == {
        "status": "call_ended"
    }
    response = voipbin.fetch(call["id"])
    assert response.status_code == 200
    assert [a["type"] for a in response.json()] == ["hangup"]
    events = await voipbin.inbound(lambda evs: len(evs) >= 1)
    assert [e["kind"] for e in events] == ["call_ended"]


async def test_bad_bodies_get_400(voipbin: Voipbin) -> None:
    body = b"not json"
    response = voipbin.client.post(
        EVENTS_PATH, content=body, headers={"X-VoIPBIN-Signature": sign_body(SECRET, body)}
    )
    assert response.status_code == 400
    assert voipbin.event("call_progressing", {"status": "progressing"}).status_code == 400


async def test_a_wrong_fetch_token_is_404(voipbin: Voipbin) -> None:
    call = voipbin.call()
    assert voipbin.fetch(call["id"], token="guess").status_code == 404
    assert voipbin.fetch(call["id"], token=TOKEN[:-1] + "y").status_code == 404


async def test_without_a_brain_the_fetch_answers_a_valid_fallback_within_its_deadline(
    voipbin: Voipbin,
) -> None:
    call = voipbin.call()
    started = time.monotonic()
    response = voipbin.fetch(call["id"])
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    answer = response.json()
    assert validate_action_array(answer) == []
    assert elapsed < voipbin.settings.voipbin_fetch_deadline_s + 0.2
    assert [a["type"] for a in answer] == ["talk", "variable_set", "digits_receive", "fetch"]
    assert answer[0]["option"]["text"] == voipbin.settings.voipbin_fallback_text
    assert answer[1]["option"] == {"key": "voipbin.call.digits", "value": ""}
    next_url = answer[3]["option"]["event_url"]
    assert next_url.startswith(f"{PUBLIC}{FETCH_PATH}/{TOKEN}?n=1&digits=")
    assert "${voipbin.call.digits}" in next_url
    # The greeting was asked for (and the sessions opened) even though it came too late.
    events = await voipbin.inbound(lambda evs: len(evs) >= 2)
    assert [e["kind"] for e in events] == ["call_started", "greeting"]
    greeting = events[1]
    assert greeting["reply"]["kind"] == "sync"
    assert greeting["reply"]["reply_to"] == voipbin.settings.instance_id

    # Later rounds without keys keep the call in the loop at once; keys become a DTMF turn.
    hold = voipbin.fetch(call["id"], query="n=1&digits=")
    assert [a["type"] for a in hold.json()] == ["variable_set", "digits_receive", "fetch"]
    keys = voipbin.fetch(call["id"], query="n=2&digits=1")
    assert validate_action_array(keys.json()) == []
    # The same keys straight back (VoIPBin kept them): a pause, not a second answer.
    again = voipbin.fetch(call["id"], query="n=3&digits=1")
    assert [a["type"] for a in again.json()] == ["sleep", "fetch"]
    events = await voipbin.inbound(lambda evs: len(evs) >= 3)
    assert [e["kind"] for e in events] == ["call_started", "greeting", "dtmf"]
    assert events[2]["text"] == "1"
    assert events[2]["provider_message_id"] == f"{call['id']}:dtmf:2"
