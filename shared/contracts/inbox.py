"""Typed entries of the per-instance inboxes: how egress reaches the ingress instance that
holds a live connection (a chat socket, a held provider request).

An inbox is a Redis stream of flat string fields; each entry type below is one `kind`. A
channel may define its own entry type (subclass `InboxEntry`, give it a unique `kind`) and
register a handler for it in ingress; reader and writer then agree on the fields by type.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class InboxEntry(BaseModel):
    """One inbox entry. Every field is a string (Redis stream fields are)."""

    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    kind: ClassVar[str]
    """The entry type's name on the wire: unique per entry type."""

    def to_fields(self) -> dict[str, str]:
        """The entry as stream fields, `kind` included (numbers and flags as text)."""
        fields = {key: _as_text(value) for key, value in self.model_dump().items()}
        return {"kind": self.kind, **fields}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> InboxEntry:
        """Parse stream fields (raises pydantic's `ValidationError` when they do not fit)."""
        return cls.model_validate({k: v for k, v in fields.items() if k != "kind"})


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class ChatDoorbell(InboxEntry):
    """A reply for `session_id` waits in its outbox: the holder of the socket drains it."""

    kind: ClassVar[str] = "chat"
    session_id: str = Field(min_length=1)
    reply_id: str = ""


class HeldAnswer(InboxEntry):
    """The answer to a request the holder keeps open (VoIPBin `fetch`), already in the
    provider's wire format: the holder returns `body` as it is."""

    kind: ClassVar[str] = "held_answer"
    correlation_id: str = Field(min_length=1)
    reply_id: str = ""
    body: str = Field(description="JSON text of the provider answer.")


class StreamPart(InboxEntry):
    """One sentence of an answer a holder streams to a provider as it is generated (VAPI's
    custom LLM). Parts of one answer share `correlation_id` and come in `part` order; the
    same part may arrive twice (a redelivery): the holder keeps the first."""

    kind: ClassVar[str] = "stream_part"
    correlation_id: str = Field(min_length=1)
    reply_id: str = ""
    part: int = Field(ge=0)
    text: str = ""
    final: bool = False
    """The answer is complete after this part (its text may be empty)."""
    end_call: bool = False
    """The conversation is over: the call ends once this answer has been heard."""


class StreamStop(InboxEntry):
    """Stop streaming this answer now: the caller talked over it (barge-in)."""

    kind: ClassVar[str] = "stream_stop"
    correlation_id: str = Field(min_length=1)
