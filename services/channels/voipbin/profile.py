"""The VoIPBin voice channel's name, profile and the settings the profile is made of.

The speaking rate is one fact used on both sides: the brain estimates from it what a
caller heard before barging in (it travels in the profile), and egress how long a said text
plays before an ending call may be hung up. Both read it here.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts import ChannelProfile, IdentityRealm, Modality, TextFormat

NAME = "voice"
"""Wire name: `InboundMessage.channel`, reply topic `<namespace>.reply.voice.v1`. (Kept from
before channels were plug-ins: topics, dedupe keys and memory entries carry it.)"""


class VoiceProfileSettings(BaseSettings):
    """How answers on VoIPBin calls are spoken (unprefixed `VOIPBIN_*`; the names these
    settings had before, `BRAIN_VOICE_*` and `EGRESS_VOICE_SPEECH_CHARS_PER_S`, still work)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    max_spoken_chars: int = Field(
        default=300,
        ge=40,
        le=8000,
        validation_alias=AliasChoices("VOIPBIN_MAX_SPOKEN_CHARS", "BRAIN_VOICE_MAX_CHARS"),
        description="Longest spoken answer, cut at a sentence boundary (about 20 s at 300).",
    )
    speech_chars_per_s: float = Field(
        default=15.0,
        gt=0,
        le=1000,
        validation_alias=AliasChoices(
            "VOIPBIN_SPEECH_CHARS_PER_S",
            "BRAIN_VOICE_SPEECH_CHARS_PER_S",
            "EGRESS_VOICE_SPEECH_CHARS_PER_S",
        ),
        description="Speaking rate of the TTS voice: what a caller heard before barging in,"
        " and how long a said text plays before an ending call is hung up.",
    )


def voice_profile(settings: VoiceProfileSettings | None = None) -> ChannelProfile:
    """Heard on a call: speakable text sent sentence by sentence, interruptible by the
    caller, and the caller's number is the customer (one memory with SMS)."""
    settings = settings or VoiceProfileSettings()
    return ChannelProfile(
        modality=Modality.SPEECH,
        text_format=TextFormat.SPEAKABLE,
        max_chars=settings.max_spoken_chars,
        interruptible=True,
        streams_parts=True,
        identity_realm=IdentityRealm.PHONE,
        speech_chars_per_s=settings.speech_chars_per_s,
    )
