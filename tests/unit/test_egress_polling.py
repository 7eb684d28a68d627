"""Egress polls its reply topics without FastStream's sleep after an empty poll."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from faststream.kafka import KafkaBroker

from services.egress.config import EgressSettings
from services.egress.main import register_reply_consumer
from services.egress.polling import HOT_LOOP_GUARD_S, poll_without_idle_sleep, without_idle_sleep

pytestmark = pytest.mark.unit


class SlowEmptyConsumer:
    """`getmany` that waits its whole timeout and finds nothing (an idle topic)."""

    def __init__(self, records: dict[Any, list[Any]] | None = None, wait: bool = True) -> None:
        self.records = records or {}
        self.wait = wait
        self.calls: list[dict[str, Any]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        self.calls.append({"timeout_ms": timeout_ms, "max_records": max_records})
        if self.wait and not self.records:
            await anyio.sleep(timeout_ms / 1000)
        return self.records


def batch_subscriber(timeout_ms: int = 50) -> Any:
    broker = KafkaBroker("127.0.0.1:1")
    return broker.subscriber(
        "replies", group_id="g", batch=True, max_records=7, batch_timeout_ms=timeout_ms
    )


@pytest.mark.asyncio
async def test_an_empty_long_poll_is_not_followed_by_a_sleep(monkeypatch: Any) -> None:
    subscriber = batch_subscriber(timeout_ms=50)
    without_idle_sleep(subscriber)
    consumer = SlowEmptyConsumer()
    started = time.monotonic()
    assert await subscriber.get_msg(consumer) == ()
    elapsed = time.monotonic() - started
    # FastStream's own get_msg would take the long poll plus the same again asleep (~100 ms).
    assert elapsed < 0.095, elapsed
    assert consumer.calls == [{"timeout_ms": 50, "max_records": 7}]


@pytest.mark.asyncio
async def test_records_come_back_flattened_across_partitions() -> None:
    subscriber = batch_subscriber()
    without_idle_sleep(subscriber)
    consumer = SlowEmptyConsumer({"tp0": ["a", "b"], "tp1": ["c"]})
    assert await subscriber.get_msg(consumer) == ("a", "b", "c")


@pytest.mark.asyncio
async def test_an_instant_empty_poll_pauses_so_the_loop_cannot_spin() -> None:
    subscriber = batch_subscriber()
    consumer = SlowEmptyConsumer(wait=False)
    started = time.monotonic()
    assert await poll_without_idle_sleep(subscriber, consumer) == ()
    assert time.monotonic() - started >= HOT_LOOP_GUARD_S * 0.9


def test_only_a_batch_subscriber_is_accepted() -> None:
    broker = KafkaBroker("127.0.0.1:1")
    with pytest.raises(TypeError):
        without_idle_sleep(broker.subscriber("replies", group_id="g"))


class QuietOutput:
    channel = "sms"

    async def deliver(self, reply: Any) -> None:
        raise AssertionError("not called")


def test_egress_reply_subscribers_poll_without_the_idle_sleep() -> None:
    """The subscriber egress builds uses our poll, and FastStream's loop still calls it."""
    import inspect

    from faststream.kafka.subscriber.usecase import LogicSubscriber

    assert "self.get_msg(consumer)" in inspect.getsource(LogicSubscriber._run_consume_loop)
    broker = KafkaBroker("127.0.0.1:1")
    settings = EgressSettings(kafka_bootstrap_servers="127.0.0.1:1")
    register_reply_consumer(broker, settings, QuietOutput(), dead_letters=None)  # type: ignore[arg-type]
    (subscriber,) = broker.subscribers
    assert subscriber.get_msg.__func__ is poll_without_idle_sleep
