"""Types used by more than one event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
"""Version of every v1 event. Bump with a new topic suffix (`.v2`) on breaking changes."""


class Channel(StrEnum):
    """Names of the built-in channels. Channel names are open (`ChannelName`): a new channel
    picks its own name and declares a `ChannelProfile`; it adds nothing here."""

    CHAT = "chat"
    SMS = "sms"
    VOICE = "voice"


def utcnow() -> datetime:
    """Timezone-aware now, the only clock events use."""
    return datetime.now(UTC)


def new_event_id() -> str:
    """A fresh, globally unique event id."""
    return uuid.uuid4().hex


class TraceContext(BaseModel):
    """W3C trace context carried inside events (and mirrored in Kafka headers)."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    traceparent: str = Field(description="W3C `traceparent`: 00-<trace id>-<span id>-<flags>.")
    tracestate: str | None = Field(default=None, description="W3C `tracestate`, passed through.")


class Event(BaseModel):
    """Fields every event on every topic carries."""

    # hide_input_in_errors: a validation error's text must never carry a customer's message
    # into a log line or a traceback.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    schema_version: int = Field(default=SCHEMA_VERSION, description="Contract version.")
    event_id: str = Field(default_factory=new_event_id, description="Unique id of this event.")
    occurred_at: datetime = Field(default_factory=utcnow, description="When it happened (UTC).")
