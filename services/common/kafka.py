"""Kafka plumbing: one way to build subscribing brokers, create topics, publish events and
read raw records. Publishing goes through `services.common.producer.KafkaProducer`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from services.common.backoff import Backoff, BackoffCounter
from services.common.kafka_backoff import throttle_metadata_retries
from services.common.kafka_topics import ensure_topics as ensure_topics  # re-exported
from services.common.producer import KafkaProducer
from shared.contracts import InboundMessage, Reply
from shared.logs import get_logger
from shared.tracing import to_headers

log = get_logger("kafka")


def make_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    """A FastStream broker for subscribers only (egress): services publish through their
    `KafkaProducer`, which heals itself, so this broker builds no producer of its own."""
    broker = KafkaBroker(
        # A list: FastStream wraps a plain string into a one-element list, and aiokafka
        # then takes "a:9092,b:9092" for one host name (aiokafka itself splits strings).
        bootstrap_list(bootstrap_servers),
        client_id=client_id,
        request_timeout_ms=15_000,
        retry_backoff_ms=250,
        consumer_only=True,
        logger=None,
    )
    _throttle_consumers(broker)
    return broker


def bootstrap_list(bootstrap_servers: str) -> list[str]:
    """`KAFKA_BOOTSTRAP_SERVERS` ("host:port,host:port") as a list of `host:port`."""
    return [server.strip() for server in bootstrap_servers.split(",") if server.strip()]


def _throttle_consumers(broker: KafkaBroker) -> None:
    """Give every consumer FastStream builds the metadata backoff (see kafka_backoff).

    FastStream makes its consumer factory when it connects, so wrap it right after."""
    config = broker.config.broker_config
    connect = config.connect

    async def connect_then_wrap(**kwargs: Any) -> None:
        await connect(**kwargs)
        build_consumer = config.builder

        def build_throttled_consumer(*args: Any, **options: Any) -> AIOKafkaConsumer:
            consumer = build_consumer(*args, **options)
            throttle_metadata_retries(consumer._client)
            return consumer

        config.builder = build_throttled_consumer

    config.connect = connect_then_wrap  # type: ignore[method-assign]  # no hook after connect


async def retry_until_done(
    what: str, action: Callable[[], Awaitable[object]], cap_s: float = 30.0
) -> None:
    """Run `action` until it succeeds, with capped jittered backoff between Kafka errors.

    For start-up steps (create topics, join a group): a service may start while the broker
    is down; it serves its health endpoints (not ready) meanwhile instead of crash-looping.
    """
    waits = BackoffCounter(Backoff(base_s=0.5, cap_s=cap_s, jitter="equal"))
    while True:
        try:
            await action()
            return
        except (KafkaError, OSError, TimeoutError) as exc:
            delay = waits.failed()
            log.warning(
                "kafka.start.waiting", step=what, error=type(exc).__name__, retry_s=round(delay, 1)
            )
        await asyncio.sleep(delay)


async def ensure_topics_eventually(
    bootstrap_servers: str,
    topics: Iterable[str],
    partitions: int,
    replication: int | None = None,
    min_insync: int | None = None,
) -> None:
    """`ensure_topics`, retried until Kafka answers (see `retry_until_done`).

    Existing topics that differ from the wanted layout are logged (`kafka.topic.mismatch`),
    not changed; the service starts either way."""
    names = list(topics)
    await retry_until_done(
        "topics",
        lambda: ensure_topics(bootstrap_servers, names, partitions, replication, min_insync),
    )


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


async def publish_event(
    producer: KafkaProducer,
    topic: str,
    event: InboundMessage | Reply,
    timeout_s: float | None = None,
) -> None:
    """Publish a keyed pipeline event with the standard headers; returns once Kafka acked it
    (raises `KafkaTimeoutError` after `timeout_s`, see `KafkaProducer.publish`).

    The key is the conversation id (one conversation, one partition, one order).
    """
    await producer.publish(
        event.model_dump_json().encode(),
        topic,
        key=event.conversation_id.encode(),
        headers=event_headers(event),
        timeout_s=timeout_s,
    )
