"""ConversationMemory against a real Redis: shared, bounded, expiring, written exactly once."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.brain.engines.base import EngineTurn
from services.brain.memory import ConversationMemory, MemoryLimits

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONV = "conv-1"
LIMITS = MemoryLimits(max_turns=20, ttl_s=3_600, processed_ttl_s=600)


def memory_of(redis: Redis, prefix: str, limits: MemoryLimits = LIMITS) -> ConversationMemory:
    return ConversationMemory(redis, prefix, limits)


@pytest.fixture
def memory(redis: Redis, namespace: str) -> ConversationMemory:
    return memory_of(redis, namespace)


async def test_empty_conversation_has_no_history(memory: ConversationMemory) -> None:
    assert await memory.history(CONV) == []


async def test_record_turn_appends_user_then_assistant_with_channel(
    memory: ConversationMemory,
) -> None:
    stored = await memory.record_turn(CONV, "sms:m1", "sms", "where is my order?", "On its way.")

    assert stored == "On its way."
    assert await memory.history(CONV) == [
        EngineTurn(role="user", text="where is my order?", channel="sms"),
        EngineTurn(role="assistant", text="On its way.", channel="sms"),
    ]


async def test_history_is_oldest_first(memory: ConversationMemory) -> None:
    await memory.record_turn(CONV, "chat:1", "chat", "one", "answer one")
    await memory.record_turn(CONV, "chat:2", "chat", "two", "answer two")

    texts = [turn.text for turn in await memory.history(CONV)]
    assert texts == ["one", "answer one", "two", "answer two"]


async def test_repeat_of_a_dedupe_key_keeps_memory_and_returns_the_first_answer(
    memory: ConversationMemory,
) -> None:
    first = await memory.record_turn(CONV, "sms:m1", "sms", "hi", "first answer")
    before = await memory.history(CONV)

    repeat = await memory.record_turn(CONV, "sms:m1", "sms", "hi", "second answer")

    assert first == "first answer"
    assert repeat == "first answer"
    assert await memory.history(CONV) == before
    assert len(before) == 2
    assert await memory.answer_of("sms:m1") == "first answer"


async def test_answer_of_a_recorded_message(memory: ConversationMemory) -> None:
    await memory.record_turn(CONV, "chat:s1:m1", "chat", "hi", "hello!")
    assert await memory.answer_of("chat:s1:m1") == "hello!"


async def test_answer_of_an_unknown_message_is_none(memory: ConversationMemory) -> None:
    await memory.record_turn(CONV, "chat:s1:m1", "chat", "hi", "hello!")
    assert await memory.answer_of("chat:s1:never-seen") is None


async def test_memory_keeps_only_the_last_max_turns(redis: Redis, namespace: str) -> None:
    memory = memory_of(redis, namespace, MemoryLimits(max_turns=4, ttl_s=60, processed_ttl_s=60))
    for n in range(1, 4):
        await memory.record_turn(CONV, f"sms:{n}", "sms", f"q{n}", f"a{n}")

    texts = [turn.text for turn in await memory.history(CONV)]
    assert texts == ["q2", "a2", "q3", "a3"]


async def test_turns_key_expires_after_memory_ttl(
    memory: ConversationMemory, redis: Redis, namespace: str
) -> None:
    await memory.record_turn(CONV, "sms:m1", "sms", "hi", "hello")

    ttl = await redis.ttl(f"{namespace}:memory:{CONV}:turns")
    assert 3_500 <= ttl <= 3_600


async def test_each_turn_refreshes_the_memory_ttl(
    memory: ConversationMemory, redis: Redis, namespace: str
) -> None:
    key = f"{namespace}:memory:{CONV}:turns"
    await memory.record_turn(CONV, "sms:m1", "sms", "hi", "hello")
    await redis.expire(key, 5)

    await memory.record_turn(CONV, "sms:m2", "sms", "again", "hello again")

    assert await redis.ttl(key) >= 3_500


async def test_processed_marker_expires_after_processed_ttl(
    memory: ConversationMemory, redis: Redis, namespace: str
) -> None:
    await memory.record_turn(CONV, "sms:m1", "sms", "hi", "hello")

    ttl = await redis.ttl(f"{namespace}:processed:sms:m1")
    assert 500 <= ttl <= 600


async def test_sms_and_chat_share_one_conversation_history(memory: ConversationMemory) -> None:
    await memory.record_turn(CONV, "sms:m1", "sms", "texted question", "texted answer")
    await memory.record_turn(CONV, "chat:s1:m1", "chat", "chat question", "chat answer")

    history = await memory.history(CONV)
    assert [(turn.channel, turn.role, turn.text) for turn in history] == [
        ("sms", "user", "texted question"),
        ("sms", "assistant", "texted answer"),
        ("chat", "user", "chat question"),
        ("chat", "assistant", "chat answer"),
    ]


async def test_conversations_do_not_share_history(memory: ConversationMemory) -> None:
    await memory.record_turn("conv-a", "sms:a1", "sms", "from a", "to a")
    await memory.record_turn("conv-b", "sms:b1", "sms", "from b", "to b")

    assert [turn.text for turn in await memory.history("conv-a")] == ["from a", "to a"]
    assert [turn.text for turn in await memory.history("conv-b")] == ["from b", "to b"]


async def test_two_prefixes_do_not_share_memory(redis: Redis, namespace: str) -> None:
    one = memory_of(redis, f"{namespace}-one")
    two = memory_of(redis, f"{namespace}-two")

    await one.record_turn(CONV, "sms:m1", "sms", "hi", "hello")

    assert await two.history(CONV) == []
    assert await two.answer_of("sms:m1") is None
