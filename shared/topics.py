"""Every Kafka topic name, in one place.

Names are `<namespace>.<purpose>.v<schema version>`. The namespace (env
`SWITCHBOARD_TOPIC_NAMESPACE`, default `switchboard`) lets several deployments, or several
test runs, share one broker without seeing each other's events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.contracts.common import SCHEMA_VERSION


@dataclass(frozen=True)
class Topics:
    """Topic names of one deployment."""

    namespace: str = "switchboard"

    def _name(self, purpose: str) -> str:
        return f"{self.namespace}.{purpose}.v{SCHEMA_VERSION}"

    @property
    def inbound(self) -> str:
        """`InboundMessage` events, keyed by conversation id."""
        return self._name("inbound")

    def replies(self, channel: str) -> str:
        """`Reply` events for one channel, keyed by conversation id.

        Every channel has its own, named after it: a channel service (in-process or not)
        subscribes to its reply topic only, and the brain needs no table of channels.
        """
        return self._name(f"reply.{channel}")

    @property
    def ops(self) -> str:
        """Lifecycle events and delivery receipts."""
        return self._name("ops")

    @property
    def dlq_inbound(self) -> str:
        """Inbound events the brain could not process."""
        return self._name("dlq.inbound")

    @property
    def dlq_replies(self) -> str:
        """Replies egress could not deliver."""
        return self._name("dlq.reply")

    def core(self) -> list[str]:
        """The topics every deployment has, whatever its channels."""
        return [self.inbound, self.ops, self.dlq_inbound, self.dlq_replies]

    def all(self, channels: Iterable[str]) -> list[str]:
        """Every topic a deployment with these `channels` needs (`switchboard topics create`).

        A channel running as its own service creates its reply topic itself (the SDK's
        runner does), so the core never has to know it.
        """
        return [
            self.inbound,
            *(self.replies(channel) for channel in channels),
            self.ops,
            self.dlq_inbound,
            self.dlq_replies,
        ]
