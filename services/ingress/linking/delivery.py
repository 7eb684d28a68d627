"""Publishing the code's SMS: a `Reply` straight onto the SMS reply topic, acknowledged.

The code skips the brain on purpose: it must never enter conversation memory or a model
prompt. Egress delivers it like any SMS reply, deduplicated by its deterministic `reply_id`.
"""

from __future__ import annotations

from services.channels.sdk.publish import PublishFailed
from services.common.kafka import publish_event
from services.common.producer import KafkaProducer
from shared.contracts import Reply
from shared.topics import Topics


class KafkaReplyPublisher:
    """Publishes `Reply` keyed by conversation and waits for the broker's ack (acks=all)."""

    def __init__(self, producer: KafkaProducer, topics: Topics, timeout_s: float) -> None:
        self._producer = producer
        self._topics = topics
        self._timeout_s = timeout_s

    async def __call__(self, reply: Reply) -> None:
        """Return only once Kafka has the reply; raise `PublishFailed` otherwise."""
        try:
            await publish_event(
                self._producer, self._topics.replies(reply.channel), reply, self._timeout_s
            )
        except Exception as exc:
            # Only the type: the exception's text could quote the payload, and it holds the code.
            raise PublishFailed(type(exc).__name__) from None
