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
        """The entry as stream fields, `kind` included."""
        return {"kind": self.kind, **self.model_dump()}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> InboxEntry:
        """Parse stream fields (raises pydantic's `ValidationError` when they do not fit)."""
        return cls.model_validate({k: v for k, v in fields.items() if k != "kind"})


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
