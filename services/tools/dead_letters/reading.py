"""Reading a DLQ to its current end, without a consumer group, and selecting letters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from services.tools.dead_letters.letters import Position, StoredLetter
from shared.contracts import DeadLetter

READ_TIMEOUT_S = 60.0


async def read_dead_letters(
    bootstrap: str, topic: str, timeout_s: float = READ_TIMEOUT_S
) -> list[StoredLetter]:
    """Every record on the DLQ `topic` now, by partition then offset; [] if no such topic.

    Reads without a consumer group (nothing is committed) up to the end offsets taken at the
    start, so letters parked meanwhile wait for the next run. A record that is not a
    `DeadLetter` comes back with `letter=None` and a `parse_error`.
    """
    partitions = [TopicPartition(topic, number) for number in await _partitions(bootstrap, topic)]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        # A group-less consumer resets a new assignment to this, racing the seek below.
        auto_offset_reset="earliest",
        client_id="switchboard-dlq-reader",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        end: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(timeout_s):
            records = await _fetch_until(consumer, end)
    except TimeoutError as exc:
        raise TimeoutError(f"could not read {topic} to its end in {timeout_s:.0f} s") from exc
    finally:
        await consumer.stop()
    by_position = {(record.partition, record.offset): record for record in records}
    return [_parse(topic, by_position[position]) for position in sorted(by_position)]


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    """Partition ids of `topic`, [] if it does not exist.

    Asks for every topic's metadata: naming the topic would let a broker that auto-creates
    topics create it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        described: list[dict[str, Any]] = await admin.describe_topics()
    finally:
        await admin.close()
    return sorted(
        partition["partition"]
        for entry in described
        if entry["topic"] == topic
        for partition in entry["partitions"]
    )


async def _fetch_until(
    consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]
) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    pending = {tp for tp, stop in end.items() if await consumer.position(tp) < stop}
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=500)
        for tp, batch in batches.items():
            records.extend(record for record in batch if record.offset < end[tp])
        pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
    return records


def _parse(topic: str, record: ConsumerRecord) -> StoredLetter:
    try:
        letter = DeadLetter.model_validate_json(record.value or b"")
    except ValidationError as exc:
        return StoredLetter(topic, record.partition, record.offset, None, _describe(exc))
    return StoredLetter(topic, record.partition, record.offset, letter)


def _describe(exc: ValidationError) -> str:
    """The first validation error, without the input (it may be customer text)."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    return f"not a DeadLetter ({exc.error_count()} error(s); {where}: {first['msg']})"


def select(
    letters: Iterable[StoredLetter],
    reason: str | None = None,
    positions: set[Position] | None = None,
) -> list[StoredLetter]:
    """The letters at one of `positions` (if given) with reason `reason` (if given)."""
    return [item for item in letters if _matches(item, reason, positions)]


def _matches(item: StoredLetter, reason: str | None, positions: set[Position] | None) -> bool:
    if positions is not None and item.position not in positions:
        return False
    return reason is None or item.reason == reason
