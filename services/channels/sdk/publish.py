"""Publishing inbound events: the one place ingress hands a message to Kafka.

`ChannelPublisher` is what a channel uses: it builds the `InboundMessage` with the
channel's name and profile, emits RECEIVED, publishes and waits for Kafka's ack.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from services.common.kafka import publish_event
from services.common.ops import OpsEmitter
from services.common.producer import KafkaProducer
from shared.contracts import ChannelProfile, InboundMessage, Lifecycle, MessageKind, ReplyMode
from shared.tracing import new_trace

INBOUND_PUBLISHED = Counter(
    "switchboard_ingress_published_total", "Inbound events acknowledged by Kafka", ["channel"]
)
PUBLISH_SECONDS = Histogram(
    "switchboard_ingress_publish_seconds", "Time for Kafka to acknowledge an inbound event"
)


class PublishFailed(Exception):
    """Kafka did not acknowledge in time; the caller must not report success."""


class InboundPublisher:
    """Publishes `InboundMessage` keyed by conversation, and waits for the broker's ack."""

    def __init__(
        self, producer: KafkaProducer, topic: str, ops: OpsEmitter, timeout_s: float
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._ops = ops
        self._timeout_s = timeout_s

    async def publish(self, message: InboundMessage) -> None:
        """Return only once Kafka has the event (acks=all); raise `PublishFailed` otherwise."""
        started = time.perf_counter()
        try:
            await publish_event(self._producer, self._topic, message, self._timeout_s)
        except Exception as exc:
            await self._ops.emit(
                Lifecycle.FAILED,
                channel=message.channel,
                conversation_id=message.conversation_id,
                message_id=message.provider_message_id,
                reason=f"publish_failed:{type(exc).__name__}",
            )
            raise PublishFailed(str(type(exc).__name__)) from exc
        elapsed = time.perf_counter() - started
        PUBLISH_SECONDS.observe(elapsed)
        INBOUND_PUBLISHED.labels(message.channel).inc()
        await self._ops.emit(
            Lifecycle.PUBLISHED,
            channel=message.channel,
            conversation_id=message.conversation_id,
            message_id=message.provider_message_id,
            duration_ms=elapsed * 1000,
            traceparent=message.trace.traceparent if message.trace else None,
        )


def build_message(
    channel: str,
    profile: ChannelProfile,
    *,
    provider_message_id: str,
    address: str,
    conversation_id: str,
    kind: MessageKind = MessageKind.TEXT,
    text: str = "",
    reply: ReplyMode | None = None,
    merge_from: str | None = None,
    heard: str | None = None,
) -> InboundMessage:
    """One customer event of `channel`, stamped with its profile and a new trace."""
    return InboundMessage(
        channel=channel,
        profile=profile,
        kind=kind,
        provider_message_id=provider_message_id,
        address=address,
        conversation_id=conversation_id,
        text=text,
        reply=reply or ReplyMode(),
        merge_from=merge_from,
        heard=heard,
        trace=new_trace(),
    )


@dataclass(frozen=True)
class ChannelPublisher:
    """Publishes one channel's messages, stamped with its name and profile."""

    name: str
    profile: ChannelProfile
    publisher: InboundPublisher
    ops: OpsEmitter

    async def publish(
        self,
        *,
        provider_message_id: str,
        address: str,
        conversation_id: str,
        kind: MessageKind = MessageKind.TEXT,
        text: str = "",
        reply: ReplyMode | None = None,
        merge_from: str | None = None,
        heard: str | None = None,
    ) -> InboundMessage:
        """Build the message, emit RECEIVED, publish; returns it once Kafka has it.

        `heard`: what the caller heard of the previous answer, for speech channels that
        know it (`InboundMessage.heard`).

        Raises `PublishFailed` when Kafka did not acknowledge: the provider must then be
        told to retry (503, an `unavailable` frame), never that the message was taken.
        """
        message = build_message(
            self.name,
            self.profile,
            kind=kind,
            provider_message_id=provider_message_id,
            address=address,
            conversation_id=conversation_id,
            text=text,
            reply=reply,
            merge_from=merge_from,
            heard=heard,
        )
        await self.ops.emit(
            Lifecycle.RECEIVED,
            channel=self.name,
            conversation_id=conversation_id,
            message_id=provider_message_id,
            traceparent=message.trace.traceparent if message.trace else None,
        )
        await self.publisher.publish(message)
        return message
