"""The SMS channel's name and profile."""

from __future__ import annotations

from shared.contracts import ChannelProfile, IdentityRealm, Modality, TextFormat

NAME = "sms"
"""Wire name: `InboundMessage.channel`, reply topic `<namespace>.reply.sms.v1`."""

MAX_SMS_CHARS = 1600
"""Twilio's limit for one message body."""


def sms_profile(segment_budget: int = 3, collect_window_ms: int = 2000) -> ChannelProfile:
    """Read on a phone: GSM-7 plain text within a segment budget, bursts collected, and the
    number is the customer (one memory with every other phone channel)."""
    return ChannelProfile(
        modality=Modality.TEXT,
        text_format=TextFormat.GSM7,
        max_chars=MAX_SMS_CHARS,
        max_segments=segment_budget,
        collect_window_ms=collect_window_ms,
        identity_realm=IdentityRealm.PHONE,
    )
