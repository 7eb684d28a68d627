"""Conversation locks with fencing tokens, in Redis.

One brain turn per conversation at a time, across every worker. Each acquisition gets a
fencing token from a per-conversation counter that only grows (and never falls behind Redis's
clock in ms, so a failover cannot make it issue a token twice), and the lock's value *is* the
token. Every effect of a turn (memory writes, reply emission) checks in the same Lua script
that the lock still holds its token, so a worker that lost the lock (paused by GC, cut off,
rebalanced away, its lease expired) cannot write or emit: see `ConversationMemory.commit`.

Waiting is push, not poll: the releaser pushes onto the conversation's wake list and a waiter
blocks on it (`BLPOP`) for at most the lock's remaining lease, so a handoff costs one round
trip and a dead holder costs at most its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from prometheus_client import Histogram
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.common.cancellation import raise_if_cancelling
from services.common.redis import hash_tag, queue_script

LOCK_WAIT_SECONDS = Histogram(
    "switchboard_brain_lock_wait_seconds",
    "Time a turn waited for its conversation lock",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30),
)

# KEYS: lock, fence counter. ARGV: lease ms, fence ttl s.
# Returns {1, token} when acquired, {0, remaining lease ms} when held by someone else.
# The token is at least Redis's clock in ms: after a failover that lost the counter's last
# increments (replication is asynchronous), the promoted replica still issues tokens above
# every token issued before, instead of issuing one twice (docs/redis-cluster.md).
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local token = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if token < now_ms then
  token = now_ms
  redis.call('SET', KEYS[2], string.format('%d', token))
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], string.format('%d', token), 'PX', ARGV[1])
return {1, token}
"""

# KEYS: lock. ARGV: token, lease ms. Returns 1 if still ours (and extended), else 0.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lock, wake list. ARGV: token. Releases only our own lock, then wakes one waiter.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('DEL', KEYS[2])
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], 5000)
  return 1
end
return 0
"""

FENCE_TTL_S = 90 * 24 * 3600
"""The fence counter outlives any worker that could hold an old token."""


class LockLost(Exception):
    """This worker no longer holds the conversation lock; its turn must not take effect."""


@dataclass(frozen=True)
class LockKeys:
    """Redis keys of one conversation's lock.

    All carry the conversation as their hash tag (`<prefix>:lock:{<conversation>}...`), as do
    the conversation's memory keys (`services.brain.memory`): the acquire, the fenced commit
    and the release each touch several of them in one script, so on Redis Cluster they must
    share a hash slot.
    """

    lock: str
    fence: str
    wake: str

    @classmethod
    def of(cls, prefix: str, conversation_id: str) -> LockKeys:
        base = f"{prefix}:lock:{hash_tag(conversation_id)}"
        return cls(lock=base, fence=f"{base}:fence", wake=f"{base}:wake")


@dataclass(frozen=True)
class Lease:
    """A held conversation lock: the fencing token every effect is checked against."""

    conversation_id: str
    token: int
    keys: LockKeys
    waited_s: float
    contended: bool
    """Someone else held the lock when this turn first asked for it."""


AddReads = Callable[[Pipeline], None]
"""Queues extra reads on the acquiring round trip; they run right after the acquire."""


class ConversationLocks:
    """Acquire, extend and release conversation locks.

    `acquire` takes an optional `reads` callback that queues more commands on the same
    pipeline as the acquire script, so a turn gets its lock and its memory in one round trip;
    the results of those reads are returned alongside the lease (valid only when acquired).
    """

    def __init__(self, redis: Redis, blocking: Redis, prefix: str, lease_ms: int) -> None:
        self._redis = redis
        self._blocking = blocking
        self._prefix = prefix
        self.lease_ms = lease_ms
        self._acquire = redis.register_script(_ACQUIRE)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(RELEASE_SCRIPT)

    def keys(self, conversation_id: str) -> LockKeys:
        return LockKeys.of(self._prefix, conversation_id)

    async def acquire(
        self, conversation_id: str, reads: AddReads | None = None
    ) -> tuple[Lease, list[object]]:
        """Wait for the lock (pushed wake-ups, never a fixed poll) and take it."""
        keys = self.keys(conversation_id)
        started = time.perf_counter()
        contended = False
        while True:
            raise_if_cancelling()  # a cancel lost inside a Redis command (gh-86296)
            pipe = self._redis.pipeline(transaction=False)
            await queue_script(
                pipe, self._acquire, [keys.lock, keys.fence], [self.lease_ms, FENCE_TTL_S]
            )
            if reads is not None:
                reads(pipe)
            results = await pipe.execute()
            acquired, value = results[0]
            if acquired:
                waited = time.perf_counter() - started
                LOCK_WAIT_SECONDS.observe(waited)
                lease = Lease(conversation_id, int(value), keys, waited, contended)
                return lease, list(results[1:])
            contended = True
            await self._wait_for_release(keys, remaining_ms=int(value))

    async def _wait_for_release(self, keys: LockKeys, remaining_ms: int) -> None:
        # A holder that dies never pushes; its lease running out is the wake-up then.
        # PTTL is -1 for a lock without expiry (never set by us) and -2 if it just vanished.
        timeout_s = max(remaining_ms, 1) / 1000 if remaining_ms > 0 else 0.001
        await self._blocking.blpop([keys.wake], timeout=min(timeout_s, self.lease_ms / 1000))

    async def extend(self, lease: Lease) -> bool:
        """Renew the lease; False means the lock was lost (expired or taken over)."""
        return bool(await self._extend(keys=[lease.keys.lock], args=[lease.token, self.lease_ms]))

    async def release(self, lease: Lease) -> bool:
        """Release if still ours and wake one waiter. False if it was already lost."""
        return bool(
            await self._release(keys=[lease.keys.lock, lease.keys.wake], args=[lease.token])
        )

    @contextlib.asynccontextmanager
    async def kept_alive(self, lease: Lease, on_lost: Callable[[], None]) -> AsyncIterator[None]:
        """Renew the lease every third of its length while the block runs.

        If a renewal finds the lock gone, `on_lost` is called (the turn cancels its model
        call); the fenced commit would refuse the turn's effects anyway.
        """

        # The renewal stops on `done`, not on the cancel alone: redis-py on Python 3.11 can
        # swallow a cancel that lands inside a command (CPython gh-86296), and a renewal that
        # outlived its turn kept the conversation locked, and its partition stuck, for good
        # (seen with the brain SIGKILLed under load).
        done = asyncio.Event()

        async def renew() -> None:
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), self.lease_ms / 3000)
                if done.is_set():
                    return
                if not await self.extend(lease):
                    on_lost()
                    return

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            done.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
