"""Identity resolution: which conversation an address on a channel belongs to.

Voice and SMS share the customer's E.164 number, so both land in the same conversation by
default. A web chat session is its own anonymous conversation until a verified linking step
(a later issue) writes an explicit mapping; explicit mappings win over the defaults.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from shared.contracts import Channel

_PHONE_CHANNELS = {Channel.SMS, Channel.VOICE}


def default_conversation_id(channel: Channel, address: str) -> str:
    """The conversation an unlinked address belongs to (stable, no lookup needed)."""
    realm = "phone" if channel in _PHONE_CHANNELS else channel.value
    digest = hashlib.sha256(f"{realm}:{address}".encode()).hexdigest()[:24]
    return f"conv_{digest}"


class IdentityResolver:
    """Maps (channel, address) to a conversation id, honouring explicit links in Redis."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, channel: Channel, address: str) -> str:
        realm = "phone" if channel in _PHONE_CHANNELS else channel.value
        return f"{self._prefix}:identity:{realm}:{address}"

    async def resolve(self, channel: Channel, address: str) -> str:
        """The conversation id to key this customer's events by."""
        linked = await self._redis.get(self._key(channel, address))
        return str(linked) if linked else default_conversation_id(channel, address)
