"""Linking a web chat session to a phone number, through the real ingress app, against the
real Kafka broker and Redis: the code travels on the SMS reply topic, the link is announced on
the inbound topic, and the chat's next message resolves to the phone's conversation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis.asyncio import Redis
from structlog.testing import capture_logs

from services.channels.webchat.tokens import TokenSigner
from services.ingress.config import IngressSettings
from services.ingress.identity import default_conversation_id
from services.ingress.linking.codes import code_reply_id
from services.ingress.main import create_app
from shared.contracts import Channel, MessageKind
from tests.support.infra import Infra
from tests.support.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SECRET = "integration-test-chat-token-secret-0123456789"
PHONE_TYPED = "+1 (415) 555-0100"
PHONE = "+14155550100"
PHONE_CONVERSATION = default_conversation_id(Channel.SMS, PHONE)
CODE_IN_TEXT = re.compile(r"Your verification code is ([0-9]{6})\.")


@dataclass
class Ingress:
    client: TestClient
    settings: IngressSettings

    def new_session(self) -> tuple[str, str]:
        """A fresh chat session: (session id, token)."""
        response = self.client.post("/v1/chat/sessions")
        assert response.status_code == 201, response.text
        body = response.json()
        return body["session_id"], body["token"]

    def start(self, token: str, phone: str = PHONE_TYPED) -> Any:
        return self.client.post("/v1/identity/link", json={"phone": phone}, headers=bearer(token))

    def verify(self, token: str, code: str) -> Any:
        return self.client.post(
            "/v1/identity/link/verify", json={"code": code}, headers=bearer(token)
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def make_ingress(infra: Infra, namespace: str) -> Iterator[Callable[..., Ingress]]:
    """Starts ingress apps (lifespan included) of one deployment; each call is an instance."""
    with contextlib.ExitStack() as stack:
        count = 0

        def make(**overrides: Any) -> Ingress:
            nonlocal count
            count += 1
            settings = IngressSettings(
                kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
                redis_url=infra.redis_url,
                topic_namespace=namespace,
                redis_prefix=namespace,
                topic_partitions=2,
                instance_id=f"ingress-{namespace}-{count}",
                chat_token_secret=SecretStr(SECRET),
                **overrides,
            )
            client = stack.enter_context(TestClient(create_app(settings)))
            return Ingress(client, settings)

        yield make


@pytest.fixture
def ingress(make_ingress: Callable[..., Ingress]) -> Ingress:
    return make_ingress()


async def code_sms(ingress: Ingress, link_id: str) -> dict[str, Any]:
    """The code's SMS reply of one link attempt, as published on the SMS reply topic."""
    topic = ingress.settings.topics.replies(Channel.SMS)
    events = await read_topic(
        ingress.settings.kafka_bootstrap_servers,
        topic,
        lambda evs: any(e["in_reply_to"] == f"link:{link_id}" for e in evs),
    )
    matching = [e for e in events if e["in_reply_to"] == f"link:{link_id}"]
    assert matching, f"no code SMS for {link_id} on {topic}"
    return matching[0]


async def code_of(ingress: Ingress, link_id: str) -> str:
    match = CODE_IN_TEXT.search((await code_sms(ingress, link_id))["text"])
    assert match, "the SMS does not carry a code"
    return match.group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def inbound_events(
    ingress: Ingress, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    return await read_topic(
        ingress.settings.kafka_bootstrap_servers,
        ingress.settings.topics.inbound,
        until,
        timeout_s,
    )


def mapping_key(namespace: str, session_id: str) -> str:
    return f"{namespace}:identity:chat:{session_id}"


def pending_key(namespace: str, session_id: str) -> str:
    return f"{namespace}:link:pending:{{{session_id}}}"


# --- the happy path --------------------------------------------------------------------------


async def test_a_verified_code_links_the_chat_to_the_phone_conversation(
    ingress: Ingress, redis: Redis, namespace: str
) -> None:
    session_id, token = ingress.new_session()
    anonymous = default_conversation_id(Channel.CHAT, session_id)

    with capture_logs() as logs:
        started = ingress.start(token)
        assert started.status_code == 202, started.text
        link_id = started.json()["link_id"]
        assert started.json() == {"link_id": link_id, "expires_in_s": 600}

        sms = await code_sms(ingress, link_id)
        assert sms["channel"] == "sms"
        assert sms["address"] == PHONE, "the code goes to the normalized E.164 number"
        assert sms["conversation_id"] == PHONE_CONVERSATION
        assert sms["reply_id"] == code_reply_id(link_id)
        assert sms["in_reply_to"] == f"link:{link_id}"
        assert "expires in 10 minutes" in sms["text"]
        code = await code_of(ingress, link_id)

        # Only a keyed digest of the code is stored.
        stored = await redis.hgetall(pending_key(namespace, session_id))
        assert stored["phone"] == PHONE and stored["attempts"] == "0"
        assert code not in json.dumps(stored)

        verified = ingress.verify(token, code)
        assert verified.status_code == 200, verified.text
        assert verified.json() == {"linked": True, "conversation_id": PHONE_CONVERSATION}

    events = await inbound_events(
        ingress, lambda evs: any(e["provider_message_id"] == f"link:{link_id}" for e in evs)
    )
    linked = [e for e in events if e["provider_message_id"] == f"link:{link_id}"]
    assert len(linked) == 1
    assert linked[0]["kind"] == MessageKind.IDENTITY_LINKED
    assert linked[0]["channel"] == "chat"
    assert linked[0]["address"] == session_id
    assert linked[0]["conversation_id"] == PHONE_CONVERSATION
    assert linked[0]["merge_from"] == anonymous

    assert await redis.get(mapping_key(namespace, session_id)) == PHONE_CONVERSATION
    mapping_ttl = await redis.ttl(mapping_key(namespace, session_id))
    assert (
        ingress.settings.chat_token_ttl_s - 60 <= mapping_ttl <= ingress.settings.chat_token_ttl_s
    )
    assert not await redis.exists(pending_key(namespace, session_id))

    # The code is in no log line and no ops event.
    assert any(entry["event"] == "ingress.link.verified" for entry in logs)
    assert code not in repr(logs)
    ops = await read_topic(
        ingress.settings.kafka_bootstrap_servers,
        ingress.settings.topics.ops,
        lambda evs: {"published", "reply_emitted"} <= {e.get("step") for e in evs},
    )
    assert any(e.get("step") == "reply_emitted" and e["reply_id"] == sms["reply_id"] for e in ops)
    assert not re.search(rf"(?<![0-9]){code}(?![0-9])", json.dumps(ops))
    assert "verification code" not in json.dumps(ops)

    # A used code cannot be used again, and a linked session cannot start another link.
    again = ingress.verify(token, code)
    assert again.status_code == 409 and again.json()["detail"]["error"] == "already_linked"
    restart = ingress.start(token, "+1 415 555 0199")
    assert restart.status_code == 409


async def test_chat_messages_after_linking_key_the_phone_conversation_but_reply_to_the_session(
    ingress: Ingress,
) -> None:
    """Resolution is per message on one open socket; the address (where replies go) stays."""
    session_id, token = ingress.new_session()
    with ingress.client.websocket_connect(f"/v1/chat/ws?token={token}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "message", "id": "before", "text": "hello"})
        assert ws.receive_json() == {"type": "ack", "id": "before"}

        link_id = ingress.start(token).json()["link_id"]
        assert ingress.verify(token, await code_of(ingress, link_id)).status_code == 200

        ws.send_json({"type": "message", "id": "after", "text": "still me"})
        assert ws.receive_json() == {"type": "ack", "id": "after"}

    wanted = {f"{session_id}:before", f"{session_id}:after"}
    events = await inbound_events(
        ingress, lambda evs: wanted <= {e["provider_message_id"] for e in evs}
    )
    by_id = {e["provider_message_id"]: e for e in events}
    before, after = by_id[f"{session_id}:before"], by_id[f"{session_id}:after"]
    assert before["conversation_id"] == default_conversation_id(Channel.CHAT, session_id)
    assert after["conversation_id"] == PHONE_CONVERSATION
    assert before["address"] == after["address"] == session_id
    assert before["channel"] == after["channel"] == "chat"


# --- wrong, exhausted and expired codes ------------------------------------------------------


async def test_a_wrong_code_is_refused_and_the_right_one_still_works(
    ingress: Ingress, redis: Redis, namespace: str
) -> None:
    session_id, token = ingress.new_session()
    link_id = ingress.start(token).json()["link_id"]
    code = await code_of(ingress, link_id)

    refused = ingress.verify(token, wrong(code))
    assert refused.status_code == 400
    assert refused.json()["detail"] == {
        "error": "wrong_code",
        "message": "that code is not right",
        "attempts_left": 4,
    }
    assert await redis.get(mapping_key(namespace, session_id)) is None

    assert ingress.verify(token, code.replace(code[:3], code[:3] + " ", 1)).status_code == 200
    assert await redis.get(mapping_key(namespace, session_id)) == PHONE_CONVERSATION


async def test_malformed_codes_do_not_use_up_attempts(ingress: Ingress) -> None:
    _, token = ingress.new_session()
    link_id = ingress.start(token).json()["link_id"]
    code = await code_of(ingress, link_id)
    for malformed in ("12345", "abcdef", "1234567"):
        response = ingress.verify(token, malformed)
        assert response.status_code == 422
        assert response.json()["detail"]["error"] == "bad_code_format"
    assert ingress.verify(token, wrong(code)).json()["detail"]["attempts_left"] == 4


async def test_the_fifth_wrong_code_burns_the_link(
    ingress: Ingress, redis: Redis, namespace: str
) -> None:
    session_id, token = ingress.new_session()
    link_id = ingress.start(token).json()["link_id"]
    code = await code_of(ingress, link_id)

    left = [ingress.verify(token, wrong(code)).json()["detail"]["attempts_left"] for _ in "1234"]
    assert left == [4, 3, 2, 1]
    burned = ingress.verify(token, wrong(code))
    assert burned.status_code == 410
    assert burned.json()["detail"]["error"] == "link_burned"
    assert not await redis.exists(pending_key(namespace, session_id))

    # Even the right code is useless now: the customer must start over.
    late = ingress.verify(token, code)
    assert late.status_code == 410
    assert late.json()["detail"]["error"] == "no_pending_link"
    assert await redis.get(mapping_key(namespace, session_id)) is None


async def test_parallel_guesses_cannot_exceed_the_attempt_limit(
    ingress: Ingress, redis: Redis, namespace: str
) -> None:
    session_id, token = ingress.new_session()
    link_id = ingress.start(token).json()["link_id"]
    code = await code_of(ingress, link_id)
    guesses = [f"{n:06d}" for n in range(20) if f"{n:06d}" != code][:12]

    loop = asyncio.get_running_loop()
    responses = await asyncio.gather(
        *(loop.run_in_executor(None, ingress.verify, token, guess) for guess in guesses)
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(400) == 4, statuses
    assert statuses.count(410) == 8, statuses
    assert ingress.verify(token, code).status_code == 410
    assert await redis.get(mapping_key(namespace, session_id)) is None


async def test_an_expired_code_is_gone(
    make_ingress: Callable[..., Ingress], redis: Redis, namespace: str
) -> None:
    ingress = make_ingress(link_code_ttl_s=1)
    session_id, token = ingress.new_session()
    started = ingress.start(token)
    assert started.json()["expires_in_s"] == 1
    code = await code_of(ingress, started.json()["link_id"])

    deadline = time.monotonic() + 5
    while await redis.exists(pending_key(namespace, session_id)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    expired = ingress.verify(token, code)
    assert expired.status_code == 410
    assert expired.json()["detail"]["error"] == "no_pending_link"
    assert await redis.get(mapping_key(namespace, session_id)) is None


async def test_a_new_code_replaces_the_previous_one(ingress: Ingress) -> None:
    _, token = ingress.new_session()
    first = await code_of(ingress, ingress.start(token).json()["link_id"])
    second = await code_of(ingress, ingress.start(token).json()["link_id"])
    if first != second:
        assert ingress.verify(token, first).status_code == 400
    assert ingress.verify(token, second).status_code == 200


# --- rate limits -----------------------------------------------------------------------------


async def test_starts_are_rate_limited_per_session(
    make_ingress: Callable[..., Ingress],
) -> None:
    ingress = make_ingress(link_starts_per_session=2, link_rate_window_s=120)
    _, token = ingress.new_session()
    assert [ingress.start(token).status_code for _ in range(2)] == [202, 202]

    limited = ingress.start(token)
    assert limited.status_code == 429
    assert limited.json()["detail"]["error"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 0 < retry_after <= 120
    assert limited.json()["detail"]["retry_after_s"] == retry_after

    # A new session is not limited by another session's count.
    _, other = ingress.new_session()
    assert ingress.start(other).status_code == 202


async def test_starts_are_rate_limited_per_phone_and_a_refused_start_sends_nothing(
    make_ingress: Callable[..., Ingress],
) -> None:
    ingress = make_ingress(link_starts_per_phone=2)
    tokens = [ingress.new_session()[1] for _ in range(3)]
    assert ingress.start(tokens[0]).status_code == 202
    assert ingress.start(tokens[1], "415-555-0100").status_code == 202, "same number, spelled"
    limited = ingress.start(tokens[2])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert ingress.start(tokens[2], "+1 415 555 0101").status_code == 202, "another number"

    sms = await read_topic(
        ingress.settings.kafka_bootstrap_servers,
        ingress.settings.topics.replies(Channel.SMS),
        lambda evs: len(evs) >= 4,
        timeout_s=5.0,
    )
    assert sorted(e["address"] for e in sms) == [PHONE, PHONE, "+14155550101"]


# --- bad input and authentication ------------------------------------------------------------


@pytest.mark.parametrize("phone", ["12345", "call me", "+1 415 555 010", "+1 900 555 0100"])
async def test_invalid_phone_numbers_are_refused_and_not_counted(
    ingress: Ingress, redis: Redis, namespace: str, phone: str
) -> None:
    session_id, token = ingress.new_session()
    response = ingress.start(token, phone)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["error"] == "invalid_phone"
    assert not await redis.exists(f"{namespace}:link:starts:session:{{{session_id}}}")
    assert not await redis.exists(pending_key(namespace, session_id))


async def test_bodies_are_validated(ingress: Ingress) -> None:
    _, token = ingress.new_session()
    for body in ({}, {"phone": 14155550100}, {"phone": PHONE, "extra": 1}):
        response = ingress.client.post("/v1/identity/link", json=body, headers=bearer(token))
        assert response.status_code == 422, body


async def test_no_pending_link_means_410(ingress: Ingress) -> None:
    _, token = ingress.new_session()
    response = ingress.verify(token, "123456")
    assert response.status_code == 410
    assert response.json()["detail"]["error"] == "no_pending_link"


@pytest.mark.parametrize("path", ["/v1/identity/link", "/v1/identity/link/verify"])
async def test_missing_or_bad_tokens_are_401(ingress: Ingress, path: str) -> None:
    session_id, token = ingress.new_session()
    body = {"phone": PHONE} if path.endswith("link") else {"code": "123456"}

    missing = ingress.client.post(path, json=body)
    assert missing.status_code == 401
    assert missing.json()["detail"]["error"] == "missing_token"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")

    basic = ingress.client.post(path, json=body, headers={"Authorization": f"Basic {token}"})
    assert basic.status_code == 401

    forged, _ = TokenSigner(b"not-the-secret" * 4, 3600).issue(session_id)
    payload, _, signature = token.rpartition(".")
    other_session = payload.replace(session_id, "cs_" + "A" * 24)
    expired, _ = TokenSigner(SECRET.encode(), 60).issue(session_id, now=time.time() - 120)
    for bad in (forged, f"{other_session}.{signature}", expired, "garbage"):
        response = ingress.client.post(path, json=body, headers=bearer(bad))
        assert response.status_code == 401, bad
        assert response.json()["detail"]["error"] == "invalid_token"
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


# --- Kafka not acknowledging -----------------------------------------------------------------


async def test_unacknowledged_publishes_answer_503_and_the_same_code_can_be_retried(
    make_ingress: Callable[..., Ingress], redis: Redis, namespace: str
) -> None:
    """Two instances of one deployment; one cannot get Kafka acks in time (1 µs budget)."""
    healthy = make_ingress()
    stalled = make_ingress(publish_timeout_s=0.000001)
    session_id, token = healthy.new_session()

    refused = stalled.start(token)
    assert refused.status_code == 503
    assert refused.json()["detail"]["error"] == "unavailable"
    assert "Retry-After" in refused.headers

    link_id = healthy.start(token).json()["link_id"]
    code = await code_of(healthy, link_id)
    failed = stalled.verify(token, code)
    assert failed.status_code == 503
    assert await redis.get(mapping_key(namespace, session_id)) is None, "no link without the event"

    retried = healthy.verify(token, code)
    assert retried.status_code == 200, retried.text
    assert await redis.get(mapping_key(namespace, session_id)) == PHONE_CONVERSATION
    events = await inbound_events(
        healthy, lambda evs: any(e["provider_message_id"] == f"link:{link_id}" for e in evs)
    )
    assert {e["kind"] for e in events if e["provider_message_id"] == f"link:{link_id}"} == {
        "identity_linked"
    }
