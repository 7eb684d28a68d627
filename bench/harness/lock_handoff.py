"""Benchmark 4: lock handoff latency between two queued turns of one conversation.

a) Across workers, at the Redis level: `ConversationLocks` on the real Redis, a holder and a
   waiter with their own clients (as two brain workers would have). The waiter calls
   `acquire()`, finds the lock held and blocks (BLPOP on the wake list; the bench waits until
   Redis reports the client blocked). The holder calls `release()`. Measured: from the moment
   `release()` returns to the moment the waiter's `acquire()` returns. Both run in one
   process (one event loop); the time from the `release()` *call* is reported too, as an
   upper bound free of any same-loop ordering effect.
b) In one worker: two turns of one conversation queued on the production `PartitionScheduler`
   + `TurnRunner` + `TurnProcessor` (instant engine, real Redis and Kafka). Measured: from
   the first turn's fenced commit returning (it releases the lock) to the second turn's
   `acquire()` returning. In between, the first turn still publishes its reply (waiting for
   Kafka's acks=all) and emits `reply_emitted`; the reply publish time is reported alongside.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from redis.asyncio import Redis

from bench.harness import wiring
from bench.harness.engines import InstantEngine
from bench.harness.infra import Infra, create_topics, drop_namespace, new_namespace
from bench.harness.kafka_io import chat_messages
from bench.harness.report import Row, Section
from bench.harness.stats import percentile, summary_ms
from services.brain.config import BrainSettings
from services.brain.double_texting import DoubleTextingPolicy
from services.brain.locks import ConversationLocks, Lease
from services.brain.memory import CommitStatus, ConversationMemory
from services.brain.scheduler import PartitionScheduler, Work
from services.brain.turns import Turn
from services.common.redis import make_redis
from shared.contracts import InboundMessage, Reply

LEASE_MS = 10_000


@dataclass(frozen=True)
class LockConfig:
    """Benchmark 4: handoffs across workers, turn pairs in one worker, warm-up, target."""

    handoffs: int = 1000
    in_worker_pairs: int = 1000
    warmup: int = 50
    target_p99_ms: float = 5.0


async def run(infra: Infra, config: LockConfig) -> Section:
    section = Section("4. conversation lock handoff")
    from_return, from_call, contended = await redis_handoffs(infra, config)
    p99 = percentile(from_return, 99)
    section.add(
        Row(
            "4a",
            "lock handoff p99, Redis: release() returns → waiter's acquire() returns",
            f"≤ {config.target_p99_ms:g} ms",
            f"{p99:.2f} ms",
            p99 <= config.target_p99_ms,
        )
    )
    section.note(
        f"4a: {len(from_return)} handoffs ({contended} with the waiter blocked in BLPOP);"
        f" from release() return: {summary_ms(from_return)}"
    )
    section.note(f"4a: from release() call (upper bound): {summary_ms(from_call)}")
    gaps, publishes = await in_worker_gaps(infra, config)
    p99 = percentile(gaps, 99)
    section.add(
        Row(
            "4b",
            "same, in one worker: turn 1 commit → turn 2 lock acquired, p99",
            f"≤ {config.target_p99_ms:g} ms",
            f"{p99:.2f} ms",
            p99 <= config.target_p99_ms,
        )
    )
    section.note(f"4b: commit → next acquire: {summary_ms(gaps)}")
    section.note(f"4b: of which turn 1's reply publish (Kafka acks=all): {summary_ms(publishes)}")
    return section


# -- a) across workers, at the Redis level ------------------------------------------------


async def redis_handoffs(infra: Infra, config: LockConfig) -> tuple[list[float], list[float], int]:
    """(ms from release() return, ms from release() call, handoffs where the waiter blocked)."""
    prefix = new_namespace("locks")
    clients = [make_redis(infra.redis_url) for _ in range(2)]
    blocking = [make_redis(infra.redis_url, socket_timeout=None) for _ in range(2)]
    holder = ConversationLocks(clients[0], blocking[0], prefix, LEASE_MS)
    waiter = ConversationLocks(clients[1], blocking[1], prefix, LEASE_MS)
    probe = make_redis(infra.redis_url)
    from_return: list[float] = []
    from_call: list[float] = []
    contended = 0
    try:
        for i in range(config.handoffs + config.warmup):
            result = await _one_handoff(holder, waiter, probe, f"conv-{i}")
            if i < config.warmup:
                continue
            lease, t_call, t_return, t_acquired = result
            contended += lease.contended
            from_return.append((t_acquired - t_return) * 1000)
            from_call.append((t_acquired - t_call) * 1000)
    finally:
        for client in (*clients, *blocking, probe):
            await client.aclose()
        await drop_namespace(infra, prefix)
    return from_return, from_call, contended


async def _one_handoff(
    holder: ConversationLocks, waiter: ConversationLocks, probe: Redis, conversation: str
) -> tuple[Lease, float, float, float]:
    held, _ = await holder.acquire(conversation)
    blocked_before = await _blocked_clients(probe)

    async def wait_for_lock() -> tuple[Lease, float]:
        lease, _ = await waiter.acquire(conversation)
        return lease, time.perf_counter()

    task = asyncio.create_task(wait_for_lock())
    deadline = time.monotonic() + 1.0
    # Poll Redis itself: only it knows when the waiter's BLPOP is really parked.
    while await _blocked_clients(probe) <= blocked_before and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.0005)
    t_call = time.perf_counter()
    await holder.release(held)
    t_return = time.perf_counter()
    lease, t_acquired = await task
    await waiter.release(lease)
    return lease, t_call, t_return, t_acquired


async def _blocked_clients(probe: Redis) -> int:
    return int((await probe.info("clients"))["blocked_clients"])


# -- b) in one worker ----------------------------------------------------------------------


class ProbedMemory(ConversationMemory):
    """Records when each conversation's fenced commit returned."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commits: dict[str, list[float]] = defaultdict(list)

    async def commit(
        self, lease: Lease, dedupe_keys: Sequence[str], entries: Sequence[Any], outcome: str
    ) -> CommitStatus:
        status = await super().commit(lease, dedupe_keys, entries, outcome)
        self.commits[lease.conversation_id].append(time.perf_counter())
        return status


class ProbedLocks(ConversationLocks):
    """Records when each conversation's lock was acquired."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquired: dict[str, list[float]] = defaultdict(list)

    async def acquire(self, conversation_id: str, reads: Any = None) -> tuple[Lease, list[object]]:
        result = await super().acquire(conversation_id, reads)
        self.acquired[conversation_id].append(time.perf_counter())
        return result


def _record(message: InboundMessage, offset: int) -> ConsumerRecord:
    key = message.conversation_id.encode()
    value = message.model_dump_json().encode()
    return ConsumerRecord(
        topic="bench.inbound",
        partition=0,
        offset=offset,
        timestamp=int(time.time() * 1000),
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=[],
    )


async def in_worker_gaps(infra: Infra, config: LockConfig) -> tuple[list[float], list[float]]:
    """Feed conversations of two messages each, one conversation at a time, to a scheduler."""
    namespace = new_namespace("inworker")
    await create_topics(infra, namespace)
    settings = BrainSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
    )
    publish_s: dict[str, float] = {}

    def on_publish(reply: Reply, seconds: float) -> None:
        publish_s.setdefault(reply.conversation_id, seconds)  # turn 1's reply

    parts = wiring.build(
        settings,
        InstantEngine(),
        memory_cls=ProbedMemory,
        locks_cls=ProbedLocks,
        publish_probe=on_publish,
    )
    await parts.start()
    pairs = config.in_worker_pairs + config.warmup
    try:
        await _feed_pairs(parts, pairs, namespace)
    finally:
        await parts.close()
        await drop_namespace(infra, namespace)
    memory, locks = parts.memory, parts.locks
    assert isinstance(memory, ProbedMemory) and isinstance(locks, ProbedLocks)
    gaps, publishes = [], []
    for index, conversation in enumerate(sorted(memory.commits)):
        commits, acquired = memory.commits[conversation], locks.acquired[conversation]
        if index < config.warmup or len(commits) < 2 or len(acquired) < 2:
            continue
        gaps.append((acquired[1] - commits[0]) * 1000)
        publishes.append(publish_s[conversation] * 1000)
    return gaps, publishes


async def _feed_pairs(parts: wiring.BrainParts, pairs: int, tag: str) -> None:
    finished = 0
    target = 0
    done = asyncio.Event()

    async def handle(batch: Sequence[Work], turn: Turn | None) -> None:
        nonlocal finished
        await parts.runner(batch, turn)
        finished += len(batch)
        if finished >= target:
            done.set()

    scheduler = PartitionScheduler(0, handle, DoubleTextingPolicy(), asyncio.Semaphore(1000))
    messages = list(chat_messages(pairs, 2, tag))
    by_conversation: dict[str, list[InboundMessage]] = defaultdict(list)
    for message in messages:
        by_conversation[message.conversation_id].append(message)
    offset = 0
    for conversation in sorted(by_conversation):
        target += 2
        done.clear()
        for message in by_conversation[conversation]:
            scheduler.add(Work(_record(message, offset), message))
            offset += 1
        await asyncio.wait_for(done.wait(), 30)
    assert finished == target, (finished, target)
