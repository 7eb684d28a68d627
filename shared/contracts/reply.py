"""`Reply`: what the brain publishes, on the reply topic of the message's channel."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import Field

from shared.contracts.common import Event, TraceContext
from shared.contracts.inbound import InboundMessage, ReplyMode
from shared.contracts.profile import ChannelName

_REPLY_NAMESPACE = uuid.UUID("6f1c1d2e-7a43-5b8e-9c0d-5b9a0c1e2f30")


def reply_id_for(inbound: InboundMessage, part: int = 0) -> str:
    """Deterministic id of the answer to `inbound`.

    Derived from the provider's message identity (not the event id, which changes when a
    provider retries a webhook), so every redelivery of the same turn yields the same id and
    egress can drop duplicates. `part` numbers extra replies to the same turn.
    """
    name = inbound.dedupe_key if part == 0 else f"{inbound.dedupe_key}#{part}"
    return uuid.uuid5(_REPLY_NAMESPACE, name).hex


class ReplyKind(StrEnum):
    """What a reply asks egress to do."""

    MESSAGE = "message"
    """Deliver `text` to the customer."""
    STOP = "stop"
    """Voice barge-in: stop speaking the earlier answer of this conversation now."""
    OPEN = "open"
    """Voice: the call was answered; start its transcription and speaking sessions."""
    CLOSE = "close"
    """Voice: the call ended; stop its sessions (no hangup: it is already over)."""


class Reply(Event):
    """An answer, already shaped for its channel, on its way to egress."""

    reply_id: str = Field(description="Deterministic: see `reply_id_for`. Egress dedupes on it.")
    in_reply_to: str = Field(description="`provider_message_id` of the inbound message answered.")
    conversation_id: str
    channel: ChannelName
    address: str = Field(description="Where to deliver: E.164 number, chat session id, call id.")
    kind: ReplyKind = ReplyKind.MESSAGE
    text: str = Field(
        default="", max_length=8000, description="Shaped for the channel by the brain."
    )
    fence: int | None = Field(
        default=None,
        description="Fencing token of the conversation lock the brain held when it emitted"
        " this reply. Egress may refuse a reply older than one it already delivered.",
    )
    part: int = Field(
        default=0,
        ge=0,
        description="Voice answers go out sentence by sentence: 0, 1, 2... of one turn.",
    )
    final: bool = Field(default=True, description="The last part of this turn's answer.")
    end_call: bool = Field(
        default=False,
        description="Voice: hang up once this answer has been heard (the conversation is"
        " over). Set on the final part of a turn.",
    )
    covers: list[str] = Field(
        default_factory=list,
        description="All `provider_message_id`s answered by this one reply (SMS collects"
        " several texts into one turn); empty means just `in_reply_to`.",
    )
    reply: ReplyMode = Field(
        default_factory=ReplyMode, description="Copied from the inbound message: sync routing."
    )
    trace: TraceContext | None = None
