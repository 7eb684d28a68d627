"""Dead-letter topics: where a message that cannot be processed is parked, with its reason.

Parking is an effect like any other: it waits for Kafka's acknowledgement, and only then may
the consumer commit past the message. Nothing is dropped silently.
"""

from __future__ import annotations

from aiokafka import ConsumerRecord

from services.common.kafka import decode_headers
from services.common.ops import OpsEmitter
from services.common.producer import KafkaProducer
from shared.contracts import DeadLetter, Lifecycle, Stage


class DeadLetterPublisher:
    """Publishes `DeadLetter` events for one stage."""

    def __init__(self, producer: KafkaProducer, topic: str, stage: Stage, ops: OpsEmitter) -> None:
        self._producer = producer
        self._topic = topic
        self._stage = stage
        self._ops = ops

    async def park(
        self, record: ConsumerRecord, reason: str, error: str, attempts: int = 1
    ) -> DeadLetter:
        """Publish the record to the dead-letter topic and report it on the ops topic."""
        key = record.key.decode("utf-8", "replace") if record.key else None
        letter = DeadLetter(
            stage=self._stage,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=key,
            payload=(record.value or b"").decode("utf-8", "replace"),
            headers=decode_headers(record.headers),
            reason=reason,
            error=error[:500],
            attempts=attempts,
        )
        await self._producer.publish(
            letter.model_dump_json().encode(),
            self._topic,
            key=record.key,
            headers={"content-type": "application/json", "sb-dlq-reason": reason},
        )
        await self._ops.emit(
            Lifecycle.DEAD_LETTERED,
            conversation_id=key,
            reason=reason,
            attributes={"source_topic": record.topic, "offset": record.offset},
        )
        return letter
