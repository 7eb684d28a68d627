"""Conversation memory in Redis: one per conversation, shared by every channel.

A turn is written atomically with the record that its inbound message was handled, so a
redelivered message finds its answer instead of being answered again, and memory never holds
a turn twice. Memory is bounded (last `max_turns` entries) and expires after idle time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from services.brain.engines.base import EngineTurn

# KEYS: turns list, processed marker. ARGV: user json, assistant json, max turns, memory ttl,
# answer text, processed ttl. Returns the stored answer (the earlier one on a repeat).
_RECORD_TURN = """
local earlier = redis.call('GET', KEYS[2])
if earlier then return earlier end
redis.call('RPUSH', KEYS[1], ARGV[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
return ARGV[5]
"""


@dataclass(frozen=True)
class MemoryLimits:
    """Bounds of every conversation's memory."""

    max_turns: int
    ttl_s: int
    processed_ttl_s: int


class ConversationMemory:
    """Reads and writes conversation turns and handled-message records."""

    def __init__(self, redis: Redis, prefix: str, limits: MemoryLimits) -> None:
        self._redis = redis
        self._prefix = prefix
        self._limits = limits
        self._record = redis.register_script(_RECORD_TURN)

    def _turns_key(self, conversation_id: str) -> str:
        return f"{self._prefix}:memory:{conversation_id}:turns"

    def _processed_key(self, dedupe_key: str) -> str:
        return f"{self._prefix}:processed:{dedupe_key}"

    async def history(self, conversation_id: str) -> list[EngineTurn]:
        """The remembered turns, oldest first."""
        raw = await self._redis.lrange(self._turns_key(conversation_id), 0, -1)
        turns = [json.loads(item) for item in raw]
        return [EngineTurn(role=t["role"], text=t["text"], channel=t["channel"]) for t in turns]

    async def answer_of(self, dedupe_key: str) -> str | None:
        """The answer already given to this inbound message, if it was handled."""
        value = await self._redis.get(self._processed_key(dedupe_key))
        return str(value) if value is not None else None

    async def record_turn(
        self, conversation_id: str, dedupe_key: str, channel: str, user_text: str, answer: str
    ) -> str:
        """Append user + assistant turns unless this message was already recorded.

        Returns the answer that is now on record: `answer`, or the earlier one on a repeat.
        """
        now = time.time()
        user = {"role": "user", "text": user_text, "channel": channel, "at": now}
        assistant = {"role": "assistant", "text": answer, "channel": channel, "at": now}
        stored = await self._record(
            keys=[self._turns_key(conversation_id), self._processed_key(dedupe_key)],
            args=[
                json.dumps(user),
                json.dumps(assistant),
                self._limits.max_turns,
                self._limits.ttl_s,
                answer,
                self._limits.processed_ttl_s,
            ],
        )
        return str(stored)
