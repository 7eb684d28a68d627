"""Twilio's webhooks through the real ingress app, against the real Kafka broker and Redis:
signatures, publishing, keywords and consent, status callbacks."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis.asyncio import Redis

from services.channels.sms.inbound import EMPTY_TWIML
from services.channels.sms.store import SmsConsent, SmsLedger
from services.channels.sms.twilio import INBOUND_PATH, STATUS_PATH, TwilioSignatures
from services.ingress.config import IngressSettings
from services.ingress.identity import default_conversation_id
from services.ingress.main import create_app
from shared.contracts import Channel, DeliveryStatus
from tests.support.infra import Infra
from tests.support.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TOKEN = "integration-twilio-auth-token"
PUBLIC = "https://sb.example.org"
CUSTOMER = "+14155550123"


class Twilio:
    """Posts webhooks the way Twilio does, to one in-process ingress."""

    def __init__(self, client: TestClient, settings: IngressSettings) -> None:
        self.client = client
        self.settings = settings
        self.signatures = TwilioSignatures(TOKEN)

    def post(
        self,
        path: str,
        pairs: list[tuple[str, str]],
        *,
        signed_url: str | None = None,
        signature: str | None = None,
        sign: bool = True,
    ) -> Any:
        url = signed_url or f"{PUBLIC}{path}"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if sign:
            headers["X-Twilio-Signature"] = signature or self.signatures.sign(url, pairs)
        return self.client.post(path, content=urlencode(pairs), headers=headers)

    def text(self, body: str, sender: str = CUSTOMER, **kwargs: Any) -> tuple[str, Any]:
        sid = "SM" + secrets.token_hex(16)
        return sid, self.post(INBOUND_PATH, inbound_form(sid, sender, body), **kwargs)


def inbound_form(sid: str, sender: str, body: str) -> list[tuple[str, str]]:
    return [
        ("MessageSid", sid),
        ("SmsMessageSid", sid),
        ("AccountSid", "AC" + "1" * 32),
        ("From", sender),
        ("To", "+15005550006"),
        ("Body", body),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("ApiVersion", "2010-04-01"),
        ("FromCountry", "US"),
    ]


@pytest.fixture
def twilio(infra: Infra, namespace: str) -> Iterator[Twilio]:
    settings = IngressSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        topic_partitions=2,
        instance_id=f"ingress-{namespace}",
        twilio_auth_token=SecretStr(TOKEN),
        public_base_url=PUBLIC,
        sms_help_text="Help: text us. Reply STOP to opt out.",
    )
    with TestClient(create_app(settings)) as client:
        yield Twilio(client, settings)


async def inbound_until(twilio: Twilio, sid: str) -> list[dict[str, Any]]:
    """Every inbound event up to and including the one for `sid`."""
    events = await read_topic(
        twilio.settings.kafka_bootstrap_servers,
        twilio.settings.topics.inbound,
        lambda evs: any(e["provider_message_id"] == sid for e in evs),
    )
    assert any(e["provider_message_id"] == sid for e in events), f"{sid} never published"
    return events


async def test_a_signed_text_is_published_and_answered_with_empty_twiml(twilio: Twilio) -> None:
    sid, response = twilio.text("Where is my order?", sender="+1 415-555-0123")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text == EMPTY_TWIML
    [event] = await inbound_until(twilio, sid)
    assert event["channel"] == "sms"
    assert event["address"] == CUSTOMER
    assert event["conversation_id"] == default_conversation_id(Channel.SMS, CUSTOMER)
    assert event["text"] == "Where is my order?"
    assert event["reply"]["kind"] == "async"


async def test_forged_missing_and_stale_url_signatures_get_403_and_publish_nothing(
    twilio: Twilio,
) -> None:
    _, forged = twilio.text("forged", signature="bm90IGEgc2lnbmF0dXJl")
    _, missing = twilio.text("missing", sign=False)
    # Signed for the URL the app sees rather than the public one Twilio called.
    _, stale = twilio.text("stale", signed_url=f"http://testserver{INBOUND_PATH}")
    _, other_token = twilio.text("tampered body", signature=TwilioSignatures("x").sign("u", []))
    assert [r.status_code for r in (forged, missing, stale, other_token)] == [403] * 4
    control, ok = twilio.text("control")
    assert ok.status_code == 200
    events = await inbound_until(twilio, control)
    assert [e["text"] for e in events] == ["control"]


async def test_repeated_and_unknown_fields_are_signed_and_accepted(twilio: Twilio) -> None:
    sid = "SM" + secrets.token_hex(16)
    pairs = [
        *inbound_form(sid, CUSTOMER, "two pictures"),
        ("NumMedia", "2"),
        ("MediaUrl0", "https://api.twilio.com/m/1"),
        ("MediaUrl1", "https://api.twilio.com/m/2"),
        ("SomeFutureField", "a"),
        ("SomeFutureField", "b"),
    ]
    pairs = [p for p in pairs if p != ("NumMedia", "0")]
    response = twilio.post(INBOUND_PATH, pairs)
    assert response.status_code == 200
    [event] = await inbound_until(twilio, sid)
    assert event["text"] == "two pictures\n[the customer attached 2 files]"
    # The same request with one repeated value removed no longer matches its signature.
    signature = twilio.signatures.sign(f"{PUBLIC}{INBOUND_PATH}", pairs)
    response = twilio.post(INBOUND_PATH, pairs[:-1], signature=signature)
    assert response.status_code == 403


async def test_a_sender_that_is_not_a_phone_number_gets_400(twilio: Twilio) -> None:
    _, response = twilio.text("hi", sender="not-a-number")
    assert response.status_code == 400
    assert response.json()["detail"]["error"] == "invalid_address"
    assert response.json()["detail"]["field"] == "From"
    # A WhatsApp sender is not answered by SMS to the bare number: this channel is SMS.
    _, whatsapp = twilio.text("hi", sender=f"whatsapp:{CUSTOMER}")
    assert whatsapp.status_code == 400
    assert whatsapp.json()["detail"]["error"] == "unsupported_address"
    control, _ = twilio.text("control")
    events = await inbound_until(twilio, control)
    assert [e["text"] for e in events] == ["control"]


async def test_stop_then_messages_are_not_published_until_start(
    twilio: Twilio, redis: Redis, namespace: str
) -> None:
    consent = SmsConsent(redis, namespace)
    _, stop = twilio.text("Stop")
    assert stop.status_code == 200 and stop.text == EMPTY_TWIML
    assert await consent.blocked(CUSTOMER) == "opted_out"
    _, ignored = twilio.text("are you there?")
    assert ignored.status_code == 200 and ignored.text == EMPTY_TWIML
    _, start = twilio.text("START")
    assert start.status_code == 200
    assert await consent.blocked(CUSTOMER) is None
    after, _ = twilio.text("back again")
    events = await inbound_until(twilio, after)
    assert [e["text"] for e in events] == ["back again"]


async def test_help_gets_the_configured_help_text_inline(twilio: Twilio) -> None:
    _, response = twilio.text("help")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "<Message>Help: text us. Reply STOP to opt out.</Message>" in response.text
    control, _ = twilio.text("control")
    events = await inbound_until(twilio, control)
    assert [e["text"] for e in events] == ["control"]


async def test_status_callbacks_move_forward_only_and_emit_receipts(
    twilio: Twilio, redis: Redis, namespace: str
) -> None:
    ledger = SmsLedger(redis, namespace)
    conversation = default_conversation_id(Channel.SMS, CUSTOMER)
    sid, failed_sid = "SM" + secrets.token_hex(16), "SM" + secrets.token_hex(16)
    await ledger.record_sent("reply-1", conversation, sid, DeliveryStatus.QUEUED)
    await ledger.record_sent("reply-2", conversation, failed_sid, DeliveryStatus.QUEUED)

    def callback(message_sid: str, status: str, *extra: tuple[str, str], sign: bool = True) -> Any:
        pairs = [
            ("MessageSid", message_sid),
            ("SmsSid", message_sid),
            ("MessageStatus", status),
            ("SmsStatus", status),
            ("AccountSid", "AC" + "1" * 32),
            ("From", "+15005550006"),
            ("To", CUSTOMER),
            ("ApiVersion", "2010-04-01"),
            *extra,
        ]
        return twilio.post(STATUS_PATH, pairs, sign=sign)

    assert callback(sid, "delivered", ("RawDlrDoneDate", "2611211200")).status_code == 204
    assert callback(sid, "sent").status_code == 204  # late, out of order
    assert callback(failed_sid, "undelivered", ("ErrorCode", "30003")).status_code == 204
    assert callback(sid, "delivered", sign=False).status_code == 403

    assert (await ledger.status_of(sid))["status"] == "delivered"
    failed = await ledger.status_of(failed_sid)
    assert (failed["status"], failed["error_code"]) == ("undelivered", "30003")

    events = await read_topic(
        twilio.settings.kafka_bootstrap_servers,
        twilio.settings.topics.ops,
        lambda evs: sum(e.get("type") == "receipt" for e in evs) >= 2,
    )
    receipts = [
        (e["reply_id"], e["status"], e["error_code"]) for e in events if e["type"] == "receipt"
    ]
    assert receipts == [("reply-1", "delivered", None), ("reply-2", "undelivered", "30003")]
