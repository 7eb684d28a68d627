"""The self-healing producer against the real broker: a fatal error replaces it, Kafka down
at start is survived, and its health is what readiness reads."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber

from services.common.kafka import ensure_topics
from services.common.producer import KafkaProducer, ProducerUnavailable
from tests.support.infra import Infra
from tests.support.kafka import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_out_of_order_sequence_replaces_the_producer(infra: Infra, namespace: str) -> None:
    topic = f"{namespace}.producer-test"
    await ensure_topics(infra.kafka_bootstrap_servers, [topic], 1)
    producer = KafkaProducer(infra.kafka_bootstrap_servers, f"test-{namespace}")
    await producer.start()
    try:
        await producer.publish(b"first", topic, key=b"k")
        first_id = producer._producer._txn_manager.producer_id  # type: ignore[union-attr]
        # The broker expects sequence 1 next; skipping ahead is exactly what it answers
        # OutOfOrderSequenceNumber to (as after a long outage with stale sequences).
        producer._producer._txn_manager.increment_sequence_number(  # type: ignore[union-attr]
            TopicPartition(topic, 0), 7
        )
        with pytest.raises(OutOfOrderSequenceNumber):
            await producer.publish(b"lost", topic, key=b"k")
        # Replaced before the error reached the caller: a new producer id, fresh sequences.
        assert producer._producer._txn_manager.producer_id != first_id  # type: ignore[union-attr]

        # The caller retries (at-least-once) and the new producer delivers.
        await producer.publish(b"second", topic, key=b"k")
        assert not producer.health.failing
        assert producer.usable and await producer.probe()
    finally:
        await producer.stop()
    values = await _values(infra.kafka_bootstrap_servers, topic, 2)
    assert values == [b"first", b"second"]


async def test_a_producer_starts_while_kafka_is_down_and_reports_it() -> None:
    producer = KafkaProducer("127.0.0.1:1", f"test-{uuid.uuid4().hex[:6]}", watch_interval_s=0.2)
    await producer.start()  # does not raise: the service starts not-ready
    try:
        assert not producer.connected
        assert not producer.usable
        assert not await producer.probe()
        with pytest.raises(ProducerUnavailable) as raised:
            await producer.publish(b"x", "any-topic")
        assert isinstance(raised.value, KafkaError)  # every retry path treats it as infra
        assert producer.health.failing
        assert producer.wedged_for == 0.0  # Kafka is not answering: down, not wedged
    finally:
        await producer.stop()


async def test_a_producer_connects_once_kafka_answers(infra: Infra) -> None:
    """The watchdog keeps trying: here the 'outage' ends when the address becomes right."""
    producer = KafkaProducer("127.0.0.1:1", "test-late", watch_interval_s=0.2)
    await producer.start()
    try:
        assert not producer.connected
        producer._options["bootstrap_servers"] = infra.kafka_bootstrap_servers
        assert await eventually(lambda: producer.connected, timeout_s=20)
        assert not producer.health.failing
    finally:
        await producer.stop()


async def _values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        values: list[bytes] = []
        async with asyncio.timeout(10):
            while len(values) < count:
                batch = await consumer.getmany(timeout_ms=200)
                values += [record.value for records in batch.values() for record in records]
        return values
    finally:
        await consumer.stop()


async def test_a_producer_that_replacing_does_not_cure_reports_a_wedge(
    infra: Infra, namespace: str
) -> None:
    """Kafka answers, yet every publish fails (here: a topic that does not exist). One
    replacement is the cure for stale sequences; a second futile one is a wedge for /livez."""
    topic = f"{namespace}.not-created-yet"
    producer = KafkaProducer(
        infra.kafka_bootstrap_servers,
        f"test-{namespace}",
        request_timeout_ms=1_000,
        rebuild_after_s=0.5,
        watch_interval_s=0.1,
    )
    await producer.start()
    try:
        assert producer.wedged_for == 0.0
        async with asyncio.timeout(30):
            while producer.wedged_for == 0.0:
                with contextlib.suppress(KafkaError):
                    await producer.publish(b"x", topic)
                await asyncio.sleep(0.05)  # as every real caller backs off between tries
        assert producer.health.failing or producer.wedged_for > 0
        assert await producer.probe()  # the broker answers all along: wedged, not down

        await ensure_topics(infra.kafka_bootstrap_servers, [topic], 1)
        async with asyncio.timeout(20):
            while True:
                try:
                    await producer.publish(b"y", topic)
                    break
                except KafkaError:
                    await asyncio.sleep(0.2)
        assert producer.wedged_for == 0.0 and not producer.health.failing
    finally:
        await producer.stop()


async def test_metadata_refreshes_back_off_when_no_broker_answers(infra: Infra) -> None:
    """The busy loop behind the field's 100 % CPU: with the leader's broker unreachable,
    aiokafka forces one metadata refresh after another with no pause. Throttled, a forced
    refresh waits after each failure."""
    from aiokafka import AIOKafkaClient
    from aiokafka.cluster import BrokerMetadata

    from services.common.kafka_backoff import throttle_metadata_retries

    async def attempts_in(seconds: float, throttled: bool) -> int:
        client = AIOKafkaClient(bootstrap_servers=infra.kafka_bootstrap_servers)
        await client.bootstrap()
        calls = 0
        update = client._metadata_update

        async def counting(*args: object) -> bool:
            nonlocal calls
            calls += 1
            return bool(await update(*args))

        client._metadata_update = counting
        if throttled:
            throttle_metadata_retries(client)
        # The broker "goes away": every known broker now points at a closed port.
        cluster = client.cluster
        cluster._brokers = {
            node: BrokerMetadata(node, "127.0.0.1", 1, None) for node in cluster._brokers
        }
        for conn in list(client._conns.values()):
            conn.close()
        client._conns.clear()
        try:
            async with asyncio.timeout(seconds):
                while True:  # what the sender does while a leader is unknown
                    await client.force_metadata_update()
        except TimeoutError:
            pass
        finally:
            await client.close()
        return calls

    spinning = await attempts_in(1.5, throttled=False)
    throttled = await attempts_in(1.5, throttled=True)
    assert spinning > 50, spinning  # shows the loop is real, so the next line can fail
    assert throttled <= 5, throttled


async def test_consumers_faststream_builds_get_the_metadata_backoff(infra: Infra) -> None:
    from services.common.kafka import make_broker

    broker = make_broker(infra.kafka_bootstrap_servers, "test-egress")
    await broker.connect()  # FastStream makes its consumer factory here
    consumer = broker.config.broker_config.builder(group_id="g")
    try:
        assert consumer._client._metadata_update.__name__ == "_metadata_update_with_backoff"
    finally:
        await consumer.stop()
        await broker.stop()


@pytest.mark.timeout(30)
async def test_failing_fast_still_lets_the_event_loop_run() -> None:
    """A caller retrying without a pause must not starve the loop (its own timeout, the
    watchdog that would reconnect): the fast failure yields first."""
    producer = KafkaProducer("127.0.0.1:1", "test-tight-loop", watch_interval_s=0.2)
    await producer.start()
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                while True:
                    with contextlib.suppress(KafkaError):
                        await producer.publish(b"x", "any-topic")
    finally:
        await producer.stop()
