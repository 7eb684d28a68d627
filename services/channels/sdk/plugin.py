"""The contract of an in-process channel: a `ChannelPlugin` and the adapters it builds.

A channel is one folder under `services/channels/` whose `channel.py` defines a
`ChannelPlugin` and one line in `services/channels/registry.py`. Ingress calls
`build_inbound` once at start and mounts the adapter's routes; egress calls `build_outbound`
and subscribes the adapter to the channel's reply topic. Either side may be absent (a
channel that only receives, or only sends). The brain never sees the plugin: it reads the
`ChannelProfile` each message carries.

A channel that runs as its own process implements none of this: it speaks the topics
(see `services.channels.sdk.service`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter
from redis.asyncio import Redis

from services.channels.sdk.publish import ChannelPublisher, InboundPublisher
from services.common.inbox import InboxReader, InboxWriter
from services.common.ops import OpsEmitter
from shared.contracts import ChannelProfile, Reply


class InboundAdapter(Protocol):
    """Receives one channel's traffic in ingress: verify, parse, publish, answer the provider.

    Refuses forged or malformed input with a 4xx (or an error frame) and publishes nothing
    for it; publishes through its `ChannelPublisher` only.
    """

    def router(self) -> APIRouter:
        """The HTTP and WebSocket routes of the channel (webhooks, sockets, pages)."""
        ...

    async def run(self) -> None:
        """Background work for the life of ingress (may return at once)."""
        ...

    async def close(self) -> None:
        """Release sockets and clients at shutdown."""
        ...


class OutboundAdapter(Protocol):
    """Delivers one channel's replies in egress. Must be idempotent per `reply_id`."""

    channel: str

    async def deliver(self, reply: Reply) -> None:
        """Deliver (or durably queue) one reply; raise to have it retried, then parked."""
        ...

    async def run(self) -> None:
        """Background work for the life of egress (may return at once)."""
        ...

    async def close(self) -> None:
        """Release clients at shutdown."""
        ...


@dataclass(frozen=True)
class IngressContext:
    """What ingress hands a channel's `build_inbound`."""

    settings: Any
    """The ingress settings (`services.ingress.config.IngressSettings`)."""
    redis: Redis
    identity: Any
    """`services.ingress.identity.IdentityResolver`: (channel, address) -> conversation id."""
    publisher: InboundPublisher
    ops: OpsEmitter
    inbox: InboxReader
    """Register handlers for the typed inbox entries egress sends this instance."""

    def publisher_for(self, name: str, profile: ChannelProfile) -> ChannelPublisher:
        """The publish helper of one channel: declares its identity realm, then builds,
        announces (RECEIVED) and publishes its messages."""
        self.identity.declare(name, profile.identity_realm)
        return ChannelPublisher(name, profile, self.publisher, self.ops)


@dataclass(frozen=True)
class EgressContext:
    """What egress hands a channel's `build_outbound`."""

    settings: Any
    """The egress settings (`services.egress.config.EgressSettings`)."""
    redis: Redis
    ops: OpsEmitter
    inbox: InboxWriter
    """Reaches the ingress instance that holds a live connection (held requests, sockets)."""


@dataclass(frozen=True)
class ChannelPlugin:
    """One channel, as the registry lists it."""

    name: str
    """The wire name: `InboundMessage.channel`, the reply topic's suffix, the dedupe scope."""
    build_inbound: Callable[[IngressContext], InboundAdapter] | None = None
    build_outbound: Callable[[EgressContext], OutboundAdapter] | None = None


class NoBackgroundWork:
    """Mixin for adapters with nothing to run in the background and nothing to close."""

    async def run(self) -> None:
        """Nothing to do."""
        return None

    async def close(self) -> None:
        """Nothing to release."""
        return None
