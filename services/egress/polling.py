"""Egress's batch poll without FastStream's sleep after an empty poll.

FastStream 0.7's `BatchSubscriber.get_msg` long-polls `getmany(timeout_ms=batch_timeout_ms)`
and, when that returns nothing, *also* sleeps `batch_timeout_ms` before polling again. A
reply that reaches an idle egress during that sleep waits for it: at 20 ms that was about a
third of egress's share of a VAPI first chunk (docs/benchmarks.md, "VAPI custom LLM"). The
long poll alone already waits for data and returns as soon as a record arrives, so the
sleep buys nothing but fewer wake-ups; a longer long poll buys those back.
"""

from __future__ import annotations

import time
import types
from itertools import chain
from typing import Any

import anyio
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream.kafka.subscriber.usecase import BatchSubscriber

HOT_LOOP_GUARD_S = 0.005
"""An empty poll that came back sooner than this (no assignment yet, a woken fetch waiter)
is followed by this short pause, so a consumer with nothing to wait on cannot spin."""


async def poll_without_idle_sleep(
    subscriber: BatchSubscriber, consumer: AIOKafkaConsumer
) -> tuple[ConsumerRecord, ...]:
    """One long poll of up to `batch_timeout_ms`; returns at once when records arrive."""
    started = time.monotonic()
    batches = await consumer.getmany(
        timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records
    )
    if not batches and time.monotonic() - started < HOT_LOOP_GUARD_S:
        await anyio.sleep(HOT_LOOP_GUARD_S)
    return tuple(chain(*batches.values()))


def without_idle_sleep(subscriber: Any) -> None:
    """Make this one batch subscriber poll with `poll_without_idle_sleep`.

    Bound on the instance, not patched on FastStream's class: the consume loop calls
    `self.get_msg(consumer)`, so only egress's subscribers change. `test_egress_polling`
    fails if a FastStream upgrade stops calling it.
    """
    if not isinstance(subscriber, BatchSubscriber):
        raise TypeError(f"expected a FastStream BatchSubscriber, got {type(subscriber).__name__}")
    subscriber.get_msg = types.MethodType(poll_without_idle_sleep, subscriber)  # type: ignore[method-assign]
