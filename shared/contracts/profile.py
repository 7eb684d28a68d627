"""`ChannelProfile`: what the brain needs to know about a channel, carried by every message.

The brain never asks which channel a message came from; it asks how the channel behaves.
A channel declares its profile once (in its folder, from its own settings) and ingress puts
it on every `InboundMessage`. So a channel the core has never heard of, even one running as
its own service, gets the right shaping, burst collection, interruption and speech handling
by declaring a profile, with no edit to the brain or to these contracts.

Channel names are open: any name matching `CHANNEL_NAME_PATTERN`. The name keys dedupe and
routing (`<namespace>.reply.<name>.v1` is the channel's reply topic, see `shared.topics`);
the profile decides behaviour.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

CHANNEL_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
"""Lower case, starts with a letter, at most 32 characters: safe in topic names and keys."""

ChannelName = Annotated[
    str,
    Field(
        pattern=CHANNEL_NAME_PATTERN,
        description="The channel's wire name: the dedupe scope and the reply topic's suffix.",
    ),
]


class Modality(StrEnum):
    """How the customer receives the answer."""

    TEXT = "text"
    """They read it (chat, SMS, messaging apps)."""
    SPEECH = "speech"
    """They hear it (phone calls): call control, greetings, goodbyes, barge-in."""


class TextFormat(StrEnum):
    """What the delivered text may contain."""

    MARKDOWN = "markdown"
    """Simple markdown is rendered (web chat)."""
    PLAIN = "plain"
    """No markup: markdown is stripped, links become "label (url)"."""
    GSM7 = "gsm7"
    """Plain text kept in the GSM-7 alphabet where possible, cut to `max_segments` (SMS)."""
    SPEAKABLE = "speakable"
    """Words a text-to-speech engine reads well: no markup, URLs as host names, no emoji."""


class IdentityRealm(StrEnum):
    """What the channel's address identifies, which decides whose memory a message joins."""

    PHONE = "phone"
    """An E.164 number: one conversation per phone, shared by every phone channel."""
    SESSION = "session"
    """A session of this channel only (a browser tab); it can be linked to a phone later."""
    OWN = "own"
    """The channel's own user ids: one conversation per address on this channel."""


class ChannelProfile(BaseModel):
    """How a channel behaves, as far as the brain is concerned. Immutable, small, versioned
    with the contracts (`schema_version`): new fields always come with a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    modality: Modality = Modality.TEXT
    text_format: TextFormat = TextFormat.MARKDOWN
    max_chars: int = Field(
        default=4000,
        ge=1,
        le=8000,
        description="Longest answer in characters (speech: per turn, about 20 s at 300).",
    )
    max_segments: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="gsm7 only: most SMS segments one answer may use.",
    )
    collect_window_ms: int = Field(
        default=0,
        ge=0,
        le=60_000,
        description="Texts sent this close together are answered as one turn; 0: never wait.",
    )
    interruptible: bool = Field(
        default=False,
        description="A newer utterance stops the answer being generated (speech barge-in).",
    )
    streams_parts: bool = Field(
        default=False,
        description="The answer goes out sentence by sentence as it is generated (`Reply.part`)"
        " unless a held request waits for it whole (reply mode sync).",
    )
    identity_realm: IdentityRealm = IdentityRealm.SESSION
    speech_chars_per_s: float = Field(
        default=15.0,
        gt=0,
        le=1000,
        description="speech only: speaking rate, to estimate what a caller heard of an answer.",
    )

    @model_validator(mode="after")
    def _segments_only_for_gsm7(self) -> ChannelProfile:
        if self.max_segments is not None and self.text_format is not TextFormat.GSM7:
            raise ValueError("max_segments applies to the gsm7 text format only")
        return self

    @property
    def spoken(self) -> bool:
        """The customer hears the answer."""
        return self.modality is Modality.SPEECH


LEGACY_PROFILES: dict[str, ChannelProfile] = {
    "chat": ChannelProfile(identity_realm=IdentityRealm.SESSION),
    "sms": ChannelProfile(
        text_format=TextFormat.GSM7,
        max_chars=1600,
        max_segments=3,
        collect_window_ms=2000,
        identity_realm=IdentityRealm.PHONE,
    ),
    "voice": ChannelProfile(
        modality=Modality.SPEECH,
        text_format=TextFormat.SPEAKABLE,
        max_chars=300,
        interruptible=True,
        streams_parts=True,
        identity_realm=IdentityRealm.PHONE,
    ),
}
"""Profiles of the three channels that existed before profiles did, with their defaults then.

Only for events written without a profile (by a producer older than the field): they are
read as they were meant. Every producer now sets the profile; nothing else reads this.
"""


def fill_legacy_profile(data: Any) -> Any:
    """Before validation: give a profile-less event of a pre-profile channel its old profile."""
    if isinstance(data, dict) and data.get("profile") is None:
        legacy = LEGACY_PROFILES.get(str(data.get("channel", "")))
        if legacy is not None:
            return {**data, "profile": legacy}
    return data
