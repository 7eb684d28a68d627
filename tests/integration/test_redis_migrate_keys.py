"""`switchboard redis migrate-keys` on a real Redis node: keys written in the pre-cluster
layout are found by the stores of the new version afterwards, and a second run changes
nothing. Single node only (the command refuses a cluster, tested here too)."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from services.brain.locks import ConversationLocks
from services.brain.memory import ConversationMemory, MemoryLimits
from services.channels.sms.store import ClaimKind, SmsLedger
from services.channels.webchat.store import ChatStore
from services.ingress.linking.store import LinkLimits, LinkStore
from services.tools.redis_keys import migrate_keys
from tests.support.infra import TEST_REDIS_CLUSTER, Infra

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONV = "conv-+15550001111"
SESSION = "cs_session1"
LIMITS = MemoryLimits(max_turns=20, ttl_s=3_600, processed_ttl_s=3_600)


def entry(role: str, text: str) -> str:
    return json.dumps({"role": role, "text": text, "channel": "sms", "at": 1.0})


async def write_old_layout(redis: Redis, p: str) -> None:
    """What the previous version left behind (key names without hash tags)."""
    await redis.rpush(f"{p}:memory:{CONV}:turns", entry("user", "hi"), entry("assistant", "yo"))
    await redis.expire(f"{p}:memory:{CONV}:turns", 3_000)
    await redis.set(f"{p}:memory:{CONV}:summary", "an earlier chat")
    await redis.set(f"{p}:lock:{CONV}:fence", "41")
    outcome = {"replies": [{"conversation_id": CONV, "reply_id": "r-old"}]}
    await redis.set(f"{p}:processed:sms:SM-old", json.dumps(outcome))
    await redis.set(f"{p}:processed:chat:no-replies", json.dumps({"replies": []}))
    await redis.hset(f"{p}:sms:ledger:r-old", mapping={"state": "sent", "sid": "SM-sid"})
    await redis.hset(f"{p}:sms:sid:SM-sid", mapping={"reply_id": "r-old", "conversation_id": CONV})
    await redis.set(f"{p}:sms:fence:{CONV}", "41")
    pending = {
        "reply_id": "r-chat",
        "conversation_id": CONV,
        "in_reply_to": "m1",
        "text": "waiting",
        "created_ms": 1,
        "seq": 1,
    }
    await redis.hset(f"{p}:chat:outbox:{SESSION}", "r-chat", json.dumps(pending))
    await redis.set(f"{p}:chat:ledger:r-chat", "1")
    await redis.set(f"{p}:chat:seq:{SESSION}", "1")
    await redis.hset(f"{p}:link:pending:{SESSION}", mapping={"link_id": "l1", "attempts": "0"})
    await redis.set(f"{p}:sms:optout:+15550001111", "keyword@1")  # untagged: stays as it is


@pytest.fixture
def single_node_url(infra: Infra) -> str:
    if TEST_REDIS_CLUSTER:
        # Provisioned the same way as the rest of the suite, never skipped: under the cluster
        # lane this file is not selected (deploy/local/test.sh), since renaming is a
        # single-node operation by design.
        raise AssertionError("run this file against a single node (no TEST_REDIS_CLUSTER)")
    return infra.redis_url


async def test_old_keys_are_found_by_the_new_stores_after_the_migration(
    single_node_url: str, redis: Redis, namespace: str
) -> None:
    await write_old_layout(redis, namespace)

    report = await migrate_keys(single_node_url, namespace)

    assert report.renamed["memory"] == 2
    assert report.renamed["lock fence"] == 1
    assert report.renamed["processed"] == 1
    assert report.left["processed"] == 1  # no reply names its conversation
    memory = ConversationMemory(redis, namespace, LIMITS)
    snapshot = await memory.snapshot(CONV, ["sms:SM-old"])
    assert [e.text for e in snapshot.recent] == ["hi", "yo"]
    assert snapshot.summary == "an earlier chat"
    assert "sms:SM-old" in snapshot.processed
    assert 0 < await redis.ttl(memory.keys(CONV).turns) <= 3_000  # the expiry moved along
    # The fencing counter moved along, and the next token is above every old one egress saw.
    locks = ConversationLocks(redis, redis, namespace, lease_ms=5_000)
    assert await redis.get(locks.keys(CONV).fence) == "41"
    lease, _ = await locks.acquire(CONV)
    assert lease.token > 41
    ledger = SmsLedger(redis, namespace)
    claim = await ledger.claim("r-old", CONV, "egress-1", fence=None)
    assert claim.kind is ClaimKind.DONE  # the sent SMS is not sent again
    assert (await ledger.claim("r-new", CONV, "egress-1", fence=40)).kind is ClaimKind.STALE
    chat = ChatStore(redis, namespace)
    assert [r.reply_id for r in await chat.pending(SESSION)] == ["r-chat"]
    assert await redis.exists(chat.ledger_key(SESSION, "r-chat"))
    link = await LinkStore(redis, namespace, LinkLimits()).reserve_attempt(SESSION)
    assert link is not None and link.link_id == "l1"
    assert await redis.get(f"{namespace}:sms:optout:+15550001111") == "keyword@1"


async def test_a_second_run_changes_nothing(
    single_node_url: str, redis: Redis, namespace: str
) -> None:
    await write_old_layout(redis, namespace)
    await migrate_keys(single_node_url, namespace)
    before = sorted([str(k) async for k in redis.scan_iter(match=f"{namespace}:*")])

    again = await migrate_keys(single_node_url, namespace)

    assert sum(again.renamed.values()) == 0
    assert sum(again.conflicts.values()) == 0
    assert sorted([str(k) async for k in redis.scan_iter(match=f"{namespace}:*")]) == before


async def test_a_dry_run_renames_nothing(
    single_node_url: str, redis: Redis, namespace: str
) -> None:
    await write_old_layout(redis, namespace)

    report = await migrate_keys(single_node_url, namespace, dry_run=True)

    assert report.renamed["memory"] == 2
    assert await redis.exists(f"{namespace}:memory:{CONV}:turns")


async def test_new_data_is_never_overwritten_and_a_fence_keeps_the_higher_value(
    single_node_url: str, redis: Redis, namespace: str
) -> None:
    await write_old_layout(redis, namespace)
    memory = ConversationMemory(redis, namespace, LIMITS)
    await redis.rpush(memory.keys(CONV).turns, entry("user", "written by the new version"))
    await redis.set(f"{namespace}:lock:{{{CONV}}}:fence", "3")  # restarted at 1 meanwhile

    report = await migrate_keys(single_node_url, namespace)

    assert report.conflicts["memory"] == 1
    assert [e.text for e in (await memory.snapshot(CONV)).recent] == ["written by the new version"]
    assert await redis.get(f"{namespace}:lock:{{{CONV}}}:fence") == "41"


async def test_a_cluster_url_is_refused() -> None:
    with pytest.raises(ValueError, match="one node"):
        await migrate_keys("redis+cluster://127.0.0.1:1", "sb")
