"""The one list of in-process channels: ingress mounts their inbound adapters, egress
subscribes their outbound adapters to their reply topics.

Adding a channel is one folder under `services/channels/` plus one line here (see
docs/channels.md). A channel that runs as its own service is not listed: it speaks the
topics itself.
"""

from __future__ import annotations

from services.channels.sdk.plugin import ChannelPlugin
from services.channels.sms.channel import SMS
from services.channels.vapi.channel import VAPI
from services.channels.voipbin.channel import VOIPBIN
from services.channels.webchat.channel import WEBCHAT

CHANNELS: tuple[ChannelPlugin, ...] = (
    WEBCHAT,
    SMS,
    VOIPBIN,
    VAPI,
)


def channel_names(channels: tuple[ChannelPlugin, ...] = CHANNELS) -> list[str]:
    """The wire names of `channels`, for topic creation."""
    return [plugin.name for plugin in channels]
