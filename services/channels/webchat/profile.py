"""The web chat channel's name and profile."""

from __future__ import annotations

from shared.contracts import ChannelProfile, IdentityRealm, Modality, TextFormat

NAME = "chat"
"""Wire name: `InboundMessage.channel`, reply topic `<namespace>.reply.chat.v1`."""

MAX_REPLY_CHARS = 4000
"""Longest chat answer; a model that rambles past it is cut at a boundary."""


def chat_profile(max_reply_chars: int = MAX_REPLY_CHARS) -> ChannelProfile:
    """Read on a screen, markdown rendered, each message its own turn, a session per tab."""
    return ChannelProfile(
        modality=Modality.TEXT,
        text_format=TextFormat.MARKDOWN,
        max_chars=max_reply_chars,
        identity_realm=IdentityRealm.SESSION,
    )
