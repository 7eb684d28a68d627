"""Every Kafka topic name, in one place.

Names are `<namespace>.<purpose>.v<schema version>`. The namespace (env
`SWITCHBOARD_TOPIC_NAMESPACE`, default `switchboard`) lets several deployments, or several
test runs, share one broker without seeing each other's events.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.common import SCHEMA_VERSION, Channel


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

    def replies(self, channel: Channel) -> str:
        """`Reply` events for one channel, keyed by conversation id."""
        return self._name(f"reply.{channel.value}")

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

    def all(self) -> list[str]:
        """Every topic a deployment needs, for `switchboard topics create`."""
        return [
            self.inbound,
            *(self.replies(channel) for channel in Channel),
            self.ops,
            self.dlq_inbound,
            self.dlq_replies,
        ]
