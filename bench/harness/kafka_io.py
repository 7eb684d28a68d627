"""Kafka I/O of the benchmarks: pre-publishing inbound events, counting and reading topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.kafka import event_headers
from shared.contracts import Channel, InboundMessage, Reply
from shared.tracing import new_trace


def chat_messages(conversations: int, per_conversation: int, tag: str) -> Iterator[InboundMessage]:
    """Valid chat `InboundMessage`s, round-robin: message k of every conversation, then k+1.

    Round-robin spreads each conversation's messages along its partition, as live traffic
    does, and keeps every conversation's own messages in order.
    """
    for seq in range(per_conversation):
        for conv in range(conversations):
            session = f"{tag}-s{conv:05d}"
            yield InboundMessage(
                channel=Channel.CHAT,
                provider_message_id=f"{session}:m{seq}",
                address=session,
                conversation_id=f"{tag}-c{conv:05d}",
                text=f"Hello, this is message {seq} of conversation {conv}. What are your hours?",
                trace=new_trace(),
            )


async def prepublish(bootstrap: str, topic: str, messages: Iterable[InboundMessage | Reply]) -> int:
    """Publish pipeline events keyed by conversation with the headers `publish_event` sets
    (idempotent, acks=all), as ingress and the brain do; returns how many."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    try:
        pending = []
        for message in messages:
            headers = event_headers(message)
            pending.append(
                await producer.send(
                    topic,
                    message.model_dump_json().encode(),
                    key=message.conversation_id.encode(),
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
            )
        await asyncio.gather(*pending)
        return len(pending)
    finally:
        await producer.stop()


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, from the broker's metadata."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = sorted(p["partition"] for p in described["partitions"])
    return [TopicPartition(topic, n) for n in numbers]


class TopicCounter:
    """Counts records on a topic cheaply (sum of end offsets), without reading them."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._topic = topic
        self._bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self._consumer.start()
        self._partitions = await partitions_of(self._bootstrap, self._topic)

    async def count(self) -> int:
        offsets = await self._consumer.end_offsets(self._partitions)
        return sum(offsets.values())

    async def stop(self) -> None:
        await self._consumer.stop()


async def committed(bootstrap: str, group_id: str) -> int:
    """Sum of a consumer group's committed offsets: records it has finished with."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return sum(max(meta.offset, 0) for meta in offsets.values())


async def read_records(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[ConsumerRecord]:
    """Every record currently on `topic` (all partitions, from the start, no consumer group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    try:
        parts = await partitions_of(bootstrap, topic)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await _at_end(consumer, ends):
                break
            for batch in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Has the consumer read every partition up to the end offsets taken at the start?"""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
