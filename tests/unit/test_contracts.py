import pytest
from pydantic import ValidationError

from shared import schemas
from shared.contracts import (
    Channel,
    DeliveryStatus,
    InboundMessage,
    ReplyMode,
    ReplyModeKind,
    reply_id_for,
    utcnow,
)
from shared.topics import Topics

pytestmark = pytest.mark.unit


def inbound(**overrides: object) -> InboundMessage:
    fields: dict[str, object] = {
        "channel": Channel.SMS,
        "provider_message_id": "SM123",
        "address": "+15551234567",
        "conversation_id": "conv_1",
        "text": "hi",
    }
    fields.update(overrides)
    return InboundMessage.model_validate(fields)


def test_schema_file_matches_the_models() -> None:
    assert schemas.SCHEMA_FILE.read_text(encoding="utf-8") == schemas.render(), (
        "run `make schemas` and commit shared/schemas/v1.json"
    )


def test_reply_id_is_deterministic_per_provider_message() -> None:
    first = inbound()
    retried = inbound(text="hi")  # a provider retry: new event id, same MessageSid
    assert first.event_id != retried.event_id
    assert reply_id_for(first) == reply_id_for(retried)
    assert reply_id_for(first) != reply_id_for(inbound(provider_message_id="SM124"))
    assert reply_id_for(first) != reply_id_for(inbound(channel=Channel.CHAT))
    assert reply_id_for(first, part=1) != reply_id_for(first)


def test_sync_reply_mode_requires_routing() -> None:
    with pytest.raises(ValidationError):
        ReplyMode(kind=ReplyModeKind.SYNC)
    mode = ReplyMode(
        kind=ReplyModeKind.SYNC, deadline_at=utcnow(), correlation_id="c1", reply_to="ingress-1"
    )
    assert mode.reply_to == "ingress-1"


def test_unknown_fields_and_empty_ids_are_refused() -> None:
    with pytest.raises(ValidationError):
        inbound(surprise=True)
    with pytest.raises(ValidationError):
        inbound(provider_message_id="")


def test_events_round_trip_through_json() -> None:
    message = inbound()
    assert InboundMessage.model_validate_json(message.model_dump_json()) == message


def test_delivery_status_only_ranks_forward() -> None:
    assert DeliveryStatus.DELIVERED.rank > DeliveryStatus.SENT.rank > DeliveryStatus.QUEUED.rank


def test_topic_names_are_namespaced_and_versioned() -> None:
    topics = Topics("acme")
    assert topics.inbound == "acme.inbound.v1"
    assert topics.replies(Channel.CHAT) == "acme.reply.chat.v1"
    names = [channel.value for channel in Channel]
    assert len(set(topics.all(names))) == len(topics.all(names)) == 4 + len(Channel)
    assert set(topics.core()) < set(topics.all(names))
    assert topics.replies("kiosk") == "acme.reply.kiosk.v1"  # any channel name, no table
