"""ChatStore against a real Redis: outbox, delivery ledger and holder lease of web chat."""

from __future__ import annotations

from dataclasses import replace

import pytest
from redis.asyncio import Redis

from services.channels.webchat.store import ChatStore, PendingReply, PutResult

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SESSION = "sess-1"


def pending(reply_id: str, created_ms: int = 1_000, text: str = "hello") -> PendingReply:
    return PendingReply(
        reply_id=reply_id,
        conversation_id="conv-1",
        in_reply_to=f"msg-{reply_id}",
        text=text,
        created_ms=created_ms,
    )


def outbox_key(prefix: str, session_id: str) -> str:
    return f"{prefix}:chat:outbox:{{{session_id}}}"


def holder_key(prefix: str, session_id: str) -> str:
    return f"{prefix}:chat:holder:{session_id}"


@pytest.fixture
def store(redis: Redis, namespace: str) -> ChatStore:
    return ChatStore(redis, namespace, outbox_ttl_s=3_600, holder_ttl_s=30)


# --- outbox and delivery ledger -------------------------------------------------------------


async def test_a_reply_fenced_below_an_accepted_one_is_refused(store: ChatStore) -> None:
    # Worker with lock token 5 lost the conversation to token 6, which answered first.
    assert await store.put_reply(SESSION, pending("r1"), fence=6) is PutResult.NEW
    assert await store.put_reply(SESSION, pending("r2"), fence=6) is PutResult.NEW
    assert await store.put_reply(SESSION, pending("late"), fence=5) is PutResult.STALE
    assert await store.put_reply(SESSION, pending("r3"), fence=7) is PutResult.NEW
    assert await store.put_reply(SESSION, pending("unfenced")) is PutResult.NEW

    assert sorted(r.reply_id for r in await store.take_pending(SESSION)) == [
        "r1",
        "r2",
        "r3",
        "unfenced",
    ]


async def test_first_put_is_new_and_a_repeat_while_waiting_is_pending(store: ChatStore) -> None:
    assert await store.put_reply(SESSION, pending("r1")) is PutResult.NEW
    assert await store.put_reply(SESSION, pending("r1")) is PutResult.PENDING


async def test_repeat_after_the_reply_was_taken_is_done(store: ChatStore) -> None:
    """A Kafka redelivery of an already sent reply must not be delivered a second time."""
    await store.put_reply(SESSION, pending("r1"))
    taken = await store.take_pending(SESSION)
    assert [reply.reply_id for reply in taken] == ["r1"]

    assert await store.put_reply(SESSION, pending("r1")) is PutResult.DONE
    assert await store.take_pending(SESSION) == []


async def test_pending_repeat_does_not_duplicate_or_overwrite_the_stored_reply(
    store: ChatStore,
) -> None:
    await store.put_reply(SESSION, pending("r1", text="first"))
    await store.put_reply(SESSION, pending("r1", text="second"))

    taken = await store.take_pending(SESSION)
    assert [(reply.reply_id, reply.text) for reply in taken] == [("r1", "first")]


async def test_take_pending_returns_oldest_first_and_empties_the_outbox(
    store: ChatStore, redis: Redis, namespace: str
) -> None:
    await store.put_reply(SESSION, pending("late", created_ms=3_000))
    await store.put_reply(SESSION, pending("early", created_ms=1_000))
    await store.put_reply(SESSION, pending("middle", created_ms=2_000))

    taken = await store.take_pending(SESSION)

    assert [reply.reply_id for reply in taken] == ["early", "middle", "late"]
    assert taken[0] == replace(pending("early", created_ms=1_000), seq=2)
    assert await redis.exists(outbox_key(namespace, SESSION)) == 0
    assert await store.take_pending(SESSION) == []


async def test_restore_puts_replies_back_and_keeps_them_pending(
    store: ChatStore, redis: Redis, namespace: str
) -> None:
    await store.put_reply(SESSION, pending("a", created_ms=1))
    await store.put_reply(SESSION, pending("b", created_ms=2))
    taken = await store.take_pending(SESSION)

    await store.restore(SESSION, taken)

    assert 3_500 <= await redis.ttl(outbox_key(namespace, SESSION)) <= 3_600
    # Back in the outbox: a redelivery is PENDING again, not DONE.
    assert await store.put_reply(SESSION, pending("a", created_ms=1)) is PutResult.PENDING
    assert await store.take_pending(SESSION) == taken


async def test_restore_of_nothing_creates_no_outbox(
    store: ChatStore, redis: Redis, namespace: str
) -> None:
    await store.restore(SESSION, [])
    assert await redis.exists(outbox_key(namespace, SESSION)) == 0


async def test_outbox_expires_after_outbox_ttl(
    store: ChatStore, redis: Redis, namespace: str
) -> None:
    await store.put_reply(SESSION, pending("r1"))

    ttl = await redis.ttl(outbox_key(namespace, SESSION))
    assert 3_500 <= ttl <= 3_600
    ledger_ttl = await redis.ttl(store.ledger_key(SESSION, "r1"))
    assert 3_500 <= ledger_ttl <= 3_600


async def test_outboxes_of_two_sessions_are_separate(store: ChatStore) -> None:
    await store.put_reply("sess-a", pending("ra"))
    await store.put_reply("sess-b", pending("rb"))

    assert [reply.reply_id for reply in await store.take_pending("sess-a")] == ["ra"]
    assert [reply.reply_id for reply in await store.take_pending("sess-b")] == ["rb"]


# --- holder lease ---------------------------------------------------------------------------


async def test_claimed_holder_is_visible_with_a_lease_ttl(
    store: ChatStore, redis: Redis, namespace: str
) -> None:
    assert await store.holder(SESSION) is None

    await store.claim_holder(SESSION, "ingress-a")

    assert await store.holder(SESSION) == "ingress-a"
    assert 25 <= await redis.ttl(holder_key(namespace, SESSION)) <= 30


async def test_newest_claim_wins(store: ChatStore) -> None:
    await store.claim_holder(SESSION, "ingress-a")
    await store.claim_holder(SESSION, "ingress-b")
    assert await store.holder(SESSION) == "ingress-b"


async def test_release_by_the_holder_drops_the_lease(store: ChatStore) -> None:
    await store.claim_holder(SESSION, "ingress-a")
    await store.release_holder(SESSION, "ingress-a")
    assert await store.holder(SESSION) is None


async def test_release_by_another_instance_keeps_the_lease(store: ChatStore) -> None:
    await store.claim_holder(SESSION, "ingress-b")
    await store.release_holder(SESSION, "ingress-a")
    assert await store.holder(SESSION) == "ingress-b"


async def test_refresh_holders_extends_the_lease(
    store: ChatStore, redis: Redis, namespace: str
) -> None:
    await store.claim_holder("sess-a", "ingress-a")
    await store.claim_holder("sess-b", "ingress-a")
    for session_id in ("sess-a", "sess-b"):
        await redis.expire(holder_key(namespace, session_id), 2)

    await store.refresh_holders(["sess-a", "sess-b"], "ingress-a")

    for session_id in ("sess-a", "sess-b"):
        assert 25 <= await redis.ttl(holder_key(namespace, session_id)) <= 30
        assert await store.holder(session_id) == "ingress-a"


async def test_refresh_of_no_sessions_is_a_no_op(store: ChatStore) -> None:
    await store.refresh_holders([], "ingress-a")
    assert await store.holder(SESSION) is None


async def test_refresh_does_not_take_a_lease_claimed_by_a_newer_holder(store: ChatStore) -> None:
    await store.claim_holder(SESSION, "ingress-a")  # first socket, now stale on A
    await store.claim_holder(SESSION, "ingress-b")  # the browser reconnected to B

    await store.refresh_holders([SESSION], "ingress-a")  # A's heartbeat still lists it

    assert await store.holder(SESSION) == "ingress-b"


async def test_refresh_renews_a_lease_that_expired(
    store: ChatStore, redis: Redis, namespace: str
) -> None:
    """A heartbeat after the lease lapsed (e.g. a slow loop) makes this instance holder again."""
    await store.claim_holder(SESSION, "ingress-a")
    await redis.delete(holder_key(namespace, SESSION))

    await store.refresh_holders([SESSION], "ingress-a")

    assert await store.holder(SESSION) == "ingress-a"
    assert 25 <= await redis.ttl(holder_key(namespace, SESSION)) <= 30


# --- isolation ------------------------------------------------------------------------------


async def test_two_prefixes_do_not_see_each_others_data(redis: Redis, namespace: str) -> None:
    first = ChatStore(redis, f"{namespace}-one")
    second = ChatStore(redis, f"{namespace}-two")

    await first.put_reply(SESSION, pending("r1"))
    await first.claim_holder(SESSION, "ingress-a")

    assert await second.holder(SESSION) is None
    assert await second.take_pending(SESSION) == []
    # Same reply id under the other prefix is a new reply, not a duplicate.
    assert await second.put_reply(SESSION, pending("r1")) is PutResult.NEW
    assert [reply.reply_id for reply in await first.take_pending(SESSION)] == ["r1"]


async def test_replies_stored_in_the_same_millisecond_go_out_in_the_order_stored(
    store: ChatStore,
) -> None:
    # A backlog draining after an outage stores several replies of a session within one
    # millisecond; their reply ids are random, so only the store order can tell.
    ids = ["f0", "0a", "c3", "1b", "9e", "00"]
    for reply_id in ids:
        await store.put_reply(SESSION, pending(reply_id, created_ms=5_000))

    assert [reply.reply_id for reply in await store.pending(SESSION)] == ids
    assert [reply.seq for reply in await store.pending(SESSION)] == [1, 2, 3, 4, 5, 6]


async def test_text_survives_the_store_unchanged(store: ChatStore) -> None:
    text = 'Ünïcode ✓ "quotes" \\ back/slash \n new line 😀'
    await store.put_reply(SESSION, pending("r1", text=text))

    (stored,) = await store.pending(SESSION)
    assert (stored.text, stored.created_ms, stored.in_reply_to) == (text, 1_000, "msg-r1")
