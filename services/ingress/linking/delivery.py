"""Publishing the code's SMS: a `Reply` straight onto the SMS reply topic, acknowledged.

The code skips the brain on purpose: it must never enter conversation memory or a model
prompt. Egress delivers it like any SMS reply, deduplicated by its deterministic `reply_id`.
"""

from __future__ import annotations

import asyncio

from faststream.kafka import KafkaBroker

from services.ingress.publisher import PublishFailed
from shared.contracts import Reply
from shared.topics import Topics
from shared.tracing import to_headers


class KafkaReplyPublisher:
    """Publishes `Reply` keyed by conversation and waits for the broker's ack (acks=all)."""

    def __init__(self, broker: KafkaBroker, topics: Topics, timeout_s: float) -> None:
        self._broker = broker
        self._topics = topics
        self._timeout_s = timeout_s

    async def __call__(self, reply: Reply) -> None:
        """Return only once Kafka has the reply; raise `PublishFailed` otherwise."""
        headers = {
            "content-type": "application/json",
            "sb-event": "Reply",
            "sb-schema-version": str(reply.schema_version),
            **to_headers(reply.trace),
        }
        try:
            await asyncio.wait_for(
                self._broker.publish(
                    reply.model_dump_json().encode(),
                    self._topics.replies(reply.channel),
                    key=reply.conversation_id.encode(),
                    headers=headers,
                ),
                self._timeout_s,
            )
        except Exception as exc:
            # Only the type: the exception's text could quote the payload, and it holds the code.
            raise PublishFailed(type(exc).__name__) from None
