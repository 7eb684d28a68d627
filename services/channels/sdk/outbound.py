"""The output channel port. A new channel is one module implementing it plus one registry line.

Imports nothing from the channel modules.
"""

from __future__ import annotations

from typing import Protocol

from shared.contracts import Channel, Reply


class OutputChannel(Protocol):
    """Delivers replies of one channel. Must be idempotent per `reply_id`."""

    channel: Channel

    async def deliver(self, reply: Reply) -> None:
        """Deliver (or durably queue) one reply; raise to have it retried."""
        ...
