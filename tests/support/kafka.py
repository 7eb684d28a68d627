"""Reading topics in tests."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer


async def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float = 30.0,
) -> list[dict[str, Any]]:
    """Read `topic` from the beginning until `until(events)` holds; return the events.

    Returns what it has when the timeout passes, so the caller's assertion shows the state.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(events):
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                events.extend(json.loads(record.value) for record in records)
        return events
    finally:
        await consumer.stop()


async def eventually(
    check: Callable[[], Any], timeout_s: float = 20.0, interval_s: float = 0.1
) -> Any:
    """Poll an async-or-sync check until it returns a truthy value; return it (or the last)."""
    deadline = time.monotonic() + timeout_s
    result = None
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval_s)
    return result


async def read_headers(
    bootstrap: str, topic: str, count: int, timeout_s: float = 30.0
) -> list[dict[str, str]]:
    """Headers of the first `count` records of `topic` (fewer if the timeout passes)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-headers-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    headers: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(headers) < count:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                headers.extend({k: v.decode() for k, v in r.headers} for r in records)
        return headers[:count]
    finally:
        await consumer.stop()
