"""Conversation locks on a real Redis: fencing tokens, pushed handoff, expiry of dead holders."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from services.brain.locks import ConversationLocks
from services.common.redis import make_redis
from tests.support.infra import Infra

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONV = "conv-lock"


@pytest.fixture
def locks(redis: Redis, infra: Infra, namespace: str) -> ConversationLocks:
    return ConversationLocks(
        redis, make_redis(infra.redis_url, socket_timeout=None), namespace, lease_ms=3_000
    )


async def test_every_acquisition_gets_a_larger_fencing_token(locks: ConversationLocks) -> None:
    tokens = []
    for _ in range(3):
        lease, _ = await locks.acquire(CONV)
        tokens.append(lease.token)
        assert await locks.release(lease)
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


async def test_a_counter_set_back_by_a_failover_still_issues_a_larger_token(
    locks: ConversationLocks, redis: Redis
) -> None:
    # Replication is asynchronous: a promoted replica may lack the counter's last increments
    # (and the lock itself). The token must still be above every token issued before.
    for _ in range(3):
        before, _ = await locks.acquire(CONV)
        assert await locks.release(before)
    await redis.set(before.keys.fence, "1")  # the replica had only the first increment
    await asyncio.sleep(0.01)  # a failover takes seconds; at least a clock tick here

    after, _ = await locks.acquire(CONV)

    assert after.token > before.token


async def test_a_waiter_is_woken_by_the_release_not_by_the_lease_running_out(
    locks: ConversationLocks,
) -> None:
    holder, _ = await locks.acquire(CONV)
    waiter = asyncio.create_task(locks.acquire(CONV))
    await asyncio.sleep(0.2)
    assert not waiter.done()

    released_at = time.perf_counter()
    await locks.release(holder)
    lease, _ = await asyncio.wait_for(waiter, timeout=2.0)

    # The lease is 3 s; a wake-up well before it means the release pushed the handoff.
    assert time.perf_counter() - released_at < 1.0
    assert lease.token > holder.token and lease.contended


async def test_a_dead_holder_is_replaced_when_its_lease_runs_out(
    redis: Redis, infra: Infra, namespace: str
) -> None:
    short = ConversationLocks(
        redis, make_redis(infra.redis_url, socket_timeout=None), namespace, lease_ms=500
    )
    dead, _ = await short.acquire(CONV)  # never released, never renewed

    started = time.perf_counter()
    lease, _ = await short.acquire(CONV)

    assert lease.token > dead.token
    assert 0.2 < time.perf_counter() - started < 2.0
    assert not await short.extend(dead)
    assert not await short.release(dead)
    assert await redis.get(lease.keys.lock) == str(lease.token)


async def test_keepalive_renews_a_long_turn_and_reports_a_lost_lock(
    redis: Redis, infra: Infra, namespace: str
) -> None:
    short = ConversationLocks(
        redis, make_redis(infra.redis_url, socket_timeout=None), namespace, lease_ms=600
    )
    lease, _ = await short.acquire(CONV)
    lost = asyncio.Event()

    async with short.kept_alive(lease, lost.set):
        await asyncio.sleep(1.0)  # longer than the lease: renewals keep it
        assert await redis.get(lease.keys.lock) == str(lease.token)
        await redis.delete(lease.keys.lock)
        await asyncio.wait_for(lost.wait(), timeout=2.0)


async def test_acquire_returns_the_reads_queued_on_the_same_round_trip(
    locks: ConversationLocks, redis: Redis, namespace: str
) -> None:
    await redis.set(f"{namespace}:probe", "value")

    lease, reads = await locks.acquire(CONV, lambda pipe: pipe.get(f"{namespace}:probe"))

    assert reads == ["value"]
    await locks.release(lease)


class _SwallowingLocks(ConversationLocks):
    """A renewal whose Redis command swallows the cancel, as redis-py can on Python 3.11."""

    async def extend(self, lease: object) -> bool:  # type: ignore[override]
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # the command finishes and the cancel is gone
        return True


async def test_keepalive_ends_with_its_turn_even_if_a_renewal_swallows_the_cancel(
    redis: Redis, infra: Infra, namespace: str
) -> None:
    locks = _SwallowingLocks(
        redis, make_redis(infra.redis_url, socket_timeout=None), namespace, lease_ms=30
    )
    lease, _ = await locks.acquire(CONV)
    async with asyncio.timeout(5):  # before the fix: renewals forever, the turn never ends
        async with locks.kept_alive(lease, lambda: None):
            await asyncio.sleep(0.1)  # the renewal is inside `extend` when the turn ends
