"""ConversationMemory against a real Redis: shared, bounded, summarized, expiring, fenced."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from services.brain.locks import ConversationLocks, Lease
from services.brain.memory import CommitStatus, ConversationMemory, MemoryEntry, MemoryLimits

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONV = "conv-1"
LIMITS = MemoryLimits(max_turns=4, ttl_s=3_600, processed_ttl_s=600)
OUTCOME = json.dumps({"replies": []})


@pytest.fixture
def memory(redis: Redis, namespace: str) -> ConversationMemory:
    return ConversationMemory(redis, namespace, LIMITS)


@pytest.fixture
def locks(redis: Redis, namespace: str) -> ConversationLocks:
    return ConversationLocks(redis, redis, namespace, lease_ms=5_000)


async def exchange(
    memory: ConversationMemory, lease: Lease, key: str, user: str, channel: str = "chat"
) -> CommitStatus:
    return await memory.commit(
        lease,
        [key],
        [MemoryEntry("user", user, channel), MemoryEntry("assistant", f"re: {user}", channel)],
        OUTCOME,
    )


async def test_commit_appends_tagged_entries_marks_processed_and_releases(
    memory: ConversationMemory, locks: ConversationLocks, redis: Redis
) -> None:
    lease, _ = await locks.acquire(CONV)

    status = await exchange(memory, lease, "sms:m1", "where is my order?", channel="sms")

    assert status is CommitStatus.DONE_RELEASED
    assert await redis.exists(lease.keys.lock) == 0
    snapshot = await memory.snapshot(CONV, ["sms:m1", "sms:m2"])
    assert [(e.role, e.text, e.channel) for e in snapshot.recent] == [
        ("user", "where is my order?", "sms"),
        ("assistant", "re: where is my order?", "sms"),
    ]
    assert snapshot.processed == {"sms:m1": OUTCOME}
    assert 0 < await redis.ttl(memory.keys(CONV).turns) <= LIMITS.ttl_s
    assert 0 < await redis.ttl(memory.processed_key(CONV, "sms:m1")) <= LIMITS.processed_ttl_s


async def test_older_entries_overflow_and_the_lock_is_kept_for_the_summary(
    memory: ConversationMemory, locks: ConversationLocks, redis: Redis
) -> None:
    for index in range(2):
        lease, _ = await locks.acquire(CONV)
        assert await exchange(memory, lease, f"chat:{index}", f"q{index}") is (
            CommitStatus.DONE_RELEASED
        )
    lease, _ = await locks.acquire(CONV)

    status = await exchange(memory, lease, "chat:2", "q2")

    assert status is CommitStatus.DONE_SUMMARY_DUE
    assert await redis.get(lease.keys.lock) == str(lease.token)
    snapshot = await memory.snapshot(CONV)
    assert [e.text for e in snapshot.overflow] == ["q0", "re: q0"]
    assert [e.text for e in snapshot.recent] == ["q1", "re: q1", "q2", "re: q2"]
    assert [t.text for t in snapshot.history][:2] == ["q0", "re: q0"]

    assert await memory.fold_summary(lease, "asked q0", folded=2)

    snapshot = await memory.snapshot(CONV)
    assert (snapshot.summary, snapshot.overflow) == ("asked q0", [])
    assert await redis.exists(lease.keys.lock) == 0


async def test_writes_with_a_lost_lock_are_refused(
    memory: ConversationMemory, locks: ConversationLocks, redis: Redis
) -> None:
    lease, _ = await locks.acquire(CONV)
    await redis.delete(lease.keys.lock)
    newer, _ = await locks.acquire(CONV)

    assert await exchange(memory, lease, "chat:1", "hi") is CommitStatus.FENCED
    assert not await memory.fold_summary(lease, "x", folded=0)
    assert (await memory.snapshot(CONV, ["chat:1"])).processed == {}
    assert await memory.history(CONV) == []
    assert await exchange(memory, newer, "chat:1", "hi") is CommitStatus.DONE_RELEASED


async def test_interrupted_entries_round_trip(
    memory: ConversationMemory, locks: ConversationLocks
) -> None:
    lease, _ = await locks.acquire(CONV)
    await memory.commit(
        lease,
        ["voice:u1"],
        [
            MemoryEntry("user", "where is it", "voice"),
            MemoryEntry("assistant", "Let me check.", "voice", interrupted=True),
        ],
        OUTCOME,
    )

    said = (await memory.snapshot(CONV)).recent[-1]
    assert said.interrupted and said.text == "Let me check."
    assert (await memory.history(CONV))[-1].text == "Let me check. [interrupted by the caller]"
