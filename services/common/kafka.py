"""Kafka plumbing: one way to build brokers, create topics and read raw records."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from shared.contracts import InboundMessage, Reply
from shared.logs import get_logger
from shared.tracing import to_headers

log = get_logger("kafka")


def make_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    """A FastStream broker whose producer never loses or doubles a publish.

    `enable_idempotence=True` forces `acks=all`; `publish()` (without `no_confirm`) returns
    only once the broker has acknowledged, which is what "answer 2xx only after Kafka has the
    message" rests on.
    """
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        request_timeout_ms=15_000,
        logger=None,
    )


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str], partitions: int, replication: int = 1
) -> list[str]:
    """Create the missing topics; returns the ones created. Idempotent."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if not missing:
            return []
        # Another instance may create one between our list and create: that is fine.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [
                    NewTopic(name, num_partitions=partitions, replication_factor=replication)
                    for name in missing
                ]
            )
        log.info("kafka.topics.created", topics=missing, partitions=partitions)
        return missing
    finally:
        await admin.close()


def decode_headers(raw: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """Kafka record headers as a str dict (invalid UTF-8 replaced)."""
    return {key: value.decode("utf-8", "replace") for key, value in raw or ()}


def event_headers(event: InboundMessage | Reply) -> dict[str, str]:
    """The standard headers of a pipeline event: its name, schema version and trace context."""
    return {
        "content-type": "application/json",
        "sb-event": type(event).__name__,
        "sb-schema-version": str(event.schema_version),
        **to_headers(event.trace),
    }


async def publish_event(broker: KafkaBroker, topic: str, event: InboundMessage | Reply) -> None:
    """Publish a keyed pipeline event with the standard headers; returns once Kafka acked it.

    The key is the conversation id (one conversation, one partition, one order).
    """
    await broker.publish(
        event.model_dump_json().encode(),
        topic,
        key=event.conversation_id.encode(),
        headers=event_headers(event),
    )
