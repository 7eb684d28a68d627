"""The VAPI channel's name and profile."""

from __future__ import annotations

from shared.contracts import ChannelProfile, IdentityRealm, Modality, TextFormat

NAME = "vapi"
"""Wire name: `InboundMessage.channel`, reply topic `<namespace>.reply.vapi.v1`."""


def vapi_profile(max_spoken_chars: int = 300, speech_chars_per_s: float = 15.0) -> ChannelProfile:
    """Heard on a call: speakable text streamed sentence by sentence to VAPI, interruptible
    by the caller, and the caller's number is the customer (one memory with SMS and
    VoIPBin calls)."""
    return ChannelProfile(
        modality=Modality.SPEECH,
        text_format=TextFormat.SPEAKABLE,
        max_chars=max_spoken_chars,
        interruptible=True,
        streams_parts=True,
        identity_realm=IdentityRealm.PHONE,
        speech_chars_per_s=speech_chars_per_s,
    )
