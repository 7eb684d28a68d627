"""`InboundMessage`: what ingress publishes for every customer utterance or call event."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.common import Event, TraceContext
from shared.contracts.profile import ChannelName, ChannelProfile, fill_legacy_profile


class MessageKind(StrEnum):
    """What the inbound event is."""

    TEXT = "text"
    """A complete user message (chat message, SMS, final voice transcript)."""
    PARTIAL_TRANSCRIPT = "partial_transcript"
    """Voice: the caller is speaking (speech start or an interim transcript). Not a turn: a
    barge-in signal that stops the agent talking."""
    CALL_STARTED = "call_started"
    """Voice: the call was answered; its transcription and speaking sessions are opened."""
    GREETING = "greeting"
    """Voice: the caller is connected and waits to be greeted (a call's first `fetch`)."""
    CALL_ENDED = "call_ended"
    """Voice: the call hung up; its sessions are closed, the conversation is kept."""
    DTMF = "dtmf"
    """Voice: keys the caller pressed, in `text` (`0-9`, `*`, `#`)."""
    IDENTITY_LINKED = "identity_linked"
    """A chat session was verified as this phone's owner: `merge_from`'s memory joins in."""


class ReplyModeKind(StrEnum):
    """How the answer must travel back."""

    ASYNC = "async"
    """Delivered whenever it is ready (SMS, web chat outbox)."""
    SYNC = "sync"
    """Someone holds an HTTP request open until `deadline_at` (VoIPBin fetch, VAPI)."""
    STREAM = "stream"
    """Tokens are streamed to a held connection (VAPI custom LLM)."""


class ReplyMode(BaseModel):
    """Reply routing for one inbound message."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    kind: ReplyModeKind = ReplyModeKind.ASYNC
    deadline_at: datetime | None = Field(
        default=None, description="Sync/stream only: after this the holder answers a fallback."
    )
    correlation_id: str | None = Field(
        default=None, description="Sync/stream only: resolves the holder's pending future."
    )
    reply_to: str | None = Field(
        default=None,
        description="Sync/stream only: the holder's inbox handle (ingress instance id).",
    )

    @model_validator(mode="after")
    def _sync_needs_routing(self) -> ReplyMode:
        if self.kind is not ReplyModeKind.ASYNC and not (
            self.deadline_at and self.correlation_id and self.reply_to
        ):
            raise ValueError("sync and stream replies need deadline_at, correlation_id, reply_to")
        return self


class InboundMessage(Event):
    """One normalized customer event, keyed on Kafka by `conversation_id`."""

    channel: ChannelName
    profile: ChannelProfile = Field(
        default_factory=ChannelProfile,
        description="How the channel behaves (shaping, bursts, speech). Set by the channel;"
        " an event of a pre-profile channel without one gets that channel's old profile.",
    )
    provider_message_id: str = Field(
        min_length=1,
        max_length=256,
        description="The provider's own id for this message (Twilio MessageSid, chat client id"
        " scoped by session...). Dedupe key, together with `channel`.",
    )
    address: str = Field(
        min_length=1,
        max_length=256,
        description="Where the customer is reachable on this channel now: E.164 number (SMS),"
        " chat session id, VoIPBin call id (voice).",
    )
    conversation_id: str = Field(
        min_length=1, max_length=128, description="Resolved conversation; the Kafka key."
    )
    kind: MessageKind = MessageKind.TEXT
    text: str = Field(default="", max_length=8000)
    reply: ReplyMode = Field(default_factory=ReplyMode)
    merge_from: str | None = Field(
        default=None,
        max_length=128,
        description="identity_linked only: the conversation whose memory joins this one.",
    )
    heard: str | None = Field(
        default=None,
        max_length=8000,
        description="Speech channels that know it (VAPI): what the caller actually heard of"
        " the previous answer, as the provider transcribed it. The brain corrects its memory"
        " of that answer to this. None: unknown.",
    )
    trace: TraceContext | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_profile(cls, data: Any) -> Any:
        return fill_legacy_profile(data)

    @property
    def dedupe_key(self) -> str:
        """The stable identity of this message across provider retries and redeliveries."""
        return f"{self.channel}:{self.provider_message_id}"
