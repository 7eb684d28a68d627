"""The echo channel's name and profile."""

from __future__ import annotations

from shared.contracts import ChannelProfile, IdentityRealm, Modality, TextFormat

NAME = "echo"
"""Wire name: `InboundMessage.channel`, reply topic `<namespace>.reply.echo.v1`."""

MAX_CHARS = 200
"""Shorter than some knowledge answers, so the brain has to cut them."""


def echo_profile() -> ChannelProfile:
    """Read as plain text (no markup), short, and the user id is the customer on this
    channel only."""
    return ChannelProfile(
        modality=Modality.TEXT,
        text_format=TextFormat.PLAIN,
        max_chars=MAX_CHARS,
        identity_realm=IdentityRealm.OWN,
    )
