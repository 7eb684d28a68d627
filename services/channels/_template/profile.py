"""The Template channel's name and profile."""

from __future__ import annotations

from shared.contracts import ChannelProfile, IdentityRealm, Modality, TextFormat

NAME = "template"
"""Wire name: `InboundMessage.channel`, and the reply topic's suffix
(`<namespace>.reply.template.v1`)."""


def template_profile() -> ChannelProfile:
    """Read on a screen as plain text, each message its own turn, the channel's own user ids
    (one conversation per address). Adjust to the channel: docs/channels.md."""
    return ChannelProfile(
        modality=Modality.TEXT,
        text_format=TextFormat.PLAIN,
        max_chars=1000,
        identity_realm=IdentityRealm.OWN,
    )
