"""Conversation memory in Redis: one per conversation, shared by every channel.

Layout per conversation (all expire after `ttl_s` of idleness):
- `turns`: the most recent entries (user and assistant), oldest first, each tagged with its
  channel; at most `max_turns`.
- `overflow`: entries pushed out of `turns` and not yet folded into the summary. The engine
  still sees them, so nothing is forgotten while the summary catches up.
- `summary`: the running summary of everything older.
And per handled inbound message, a durable "processed" record holding the turn's outcome
(the replies sent), so a redelivered message republishes its answer instead of being
answered again.

Every write checks the conversation lock's fencing token inside its Lua script
(`services.brain.memory_scripts`; the lock: `services.brain.locks`): a worker that lost its
lock cannot write, and the same script that records the turn releases the lock when no
summary work is due, saving a round trip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.brain.engines.base import EngineTurn
from services.brain.locks import Lease
from services.brain.memory_scripts import AMEND_LAST, COMMIT, FOLD_SUMMARY, REPLACE, SNAPSHOT
from services.common.redis import hash_tag


@dataclass(frozen=True)
class MemoryLimits:
    """Bounds of every conversation's memory."""

    max_turns: int
    ttl_s: int
    processed_ttl_s: int

    @property
    def summarize_after(self) -> int:
        """Overflow entries that trigger folding them into the summary."""
        return max(2, self.max_turns // 2)

    @property
    def overflow_cap(self) -> int:
        """Hard bound on unsummarized overflow (if summarizing keeps failing)."""
        return self.summarize_after * 4


@dataclass(frozen=True)
class MemoryEntry:
    """One remembered utterance. `interrupted`: the caller barged in; `text` is what was said."""

    role: str
    text: str
    channel: str
    at: float = field(default_factory=time.time)
    interrupted: bool = False
    speech_started: float | None = None
    """Voice answers: when the first sentence went out (`services.brain.heard`)."""

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "role": self.role,
            "text": self.text,
            "channel": self.channel,
            "at": self.at,
        }
        if self.interrupted:
            data["interrupted"] = True
        if self.speech_started is not None:
            data["speech_started"] = self.speech_started
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: str) -> MemoryEntry:
        data = json.loads(raw)
        return cls(
            role=data["role"],
            text=data["text"],
            channel=data["channel"],
            at=float(data.get("at", 0.0)),
            interrupted=bool(data.get("interrupted", False)),
            speech_started=data.get("speech_started"),
        )

    def as_engine_turn(self) -> EngineTurn:
        text = self.text
        if self.interrupted:
            text = f"{text} [interrupted by the caller]".strip()
        if self.role == "user":
            return EngineTurn(role="user", text=text, channel=self.channel)
        return EngineTurn(role="assistant", text=text, channel=self.channel)


@dataclass(frozen=True)
class Snapshot:
    """A conversation's memory as read under its lock, plus the batch's processed records."""

    summary: str
    overflow: list[MemoryEntry]
    recent: list[MemoryEntry]
    processed: dict[str, str]

    @property
    def history(self) -> list[EngineTurn]:
        """Everything not yet summarized, oldest first."""
        return [entry.as_engine_turn() for entry in (*self.overflow, *self.recent)]


class CommitStatus(StrEnum):
    """Outcome of a fenced write."""

    DONE_RELEASED = "released"
    """Written; the lock was released in the same script."""
    DONE_SUMMARY_DUE = "summary_due"
    """Written; the lock is still held so the caller can fold the overflow into the summary."""
    FENCED = "fenced"
    """Refused: the lock no longer holds this worker's token."""


@dataclass(frozen=True)
class ConversationKeys:
    """Redis keys of one conversation's memory: `<prefix>:memory:{<conversation>}:<part>`.

    Hash-tagged by conversation like the lock keys (`services.brain.locks.LockKeys`), since
    every fenced write touches both in one script.
    """

    turns: str
    overflow: str
    summary: str

    @classmethod
    def of(cls, prefix: str, conversation_id: str) -> ConversationKeys:
        base = f"{prefix}:memory:{hash_tag(conversation_id)}"
        return cls(turns=f"{base}:turns", overflow=f"{base}:overflow", summary=f"{base}:summary")


def processed_key(prefix: str, conversation_id: str, dedupe_key: str) -> str:
    """Key of a handled message's processed record, in its conversation's hash slot (the
    commit that writes it and the read queued on the lock's round trip touch both)."""
    return f"{prefix}:processed:{hash_tag(conversation_id)}:{dedupe_key}"


class ConversationMemory:
    """Reads memory (queued on the lock's round trip) and writes it under a fencing token."""

    def __init__(self, redis: Redis, prefix: str, limits: MemoryLimits) -> None:
        self._redis = redis
        self._prefix = prefix
        self.limits = limits
        self._commit = redis.register_script(COMMIT)
        self._fold = redis.register_script(FOLD_SUMMARY)
        self._replace = redis.register_script(REPLACE)
        self._amend_last = redis.register_script(AMEND_LAST)
        self._snapshot = redis.register_script(SNAPSHOT)

    def keys(self, conversation_id: str) -> ConversationKeys:
        return ConversationKeys.of(self._prefix, conversation_id)

    def processed_key(self, conversation_id: str, dedupe_key: str) -> str:
        return processed_key(self._prefix, conversation_id, dedupe_key)

    # -- reading ---------------------------------------------------------------------------

    def queue_reads(self, pipe: Pipeline, conversation_id: str, dedupe_keys: Sequence[str]) -> None:
        """Queue the reads `snapshot_from` parses, on a pipeline (the lock's round trip)."""
        keys = self.keys(conversation_id)
        pipe.get(keys.summary)
        pipe.lrange(keys.overflow, 0, -1)
        pipe.lrange(keys.turns, 0, -1)
        # One GET per record, not MGET: redis-py refuses MGET in a cluster pipeline (all the
        # keys share the conversation's slot, but it does not check).
        for key in dedupe_keys:
            pipe.get(self.processed_key(conversation_id, key))

    @staticmethod
    def snapshot_from(results: Sequence[Any], dedupe_keys: Sequence[str]) -> Snapshot:
        """Parse the results of `queue_reads`."""
        summary, overflow, recent, *processed = results
        return Snapshot(
            summary=summary or "",
            overflow=[MemoryEntry.from_json(raw) for raw in overflow],
            recent=[MemoryEntry.from_json(raw) for raw in recent],
            processed={
                key: value for key, value in zip(dedupe_keys, processed, strict=True) if value
            },
        )

    async def snapshot(self, conversation_id: str, dedupe_keys: Sequence[str] = ()) -> Snapshot:
        """Read without the lock (tests, tools, the source of `absorb`): may be mid-turn,
        never torn (one script reads every part at one instant)."""
        keys = self.keys(conversation_id)
        results = await self._snapshot(
            keys=[
                keys.summary,
                keys.overflow,
                keys.turns,
                *(self.processed_key(conversation_id, key) for key in dedupe_keys),
            ]
        )
        return self.snapshot_from(results, dedupe_keys)

    async def history(self, conversation_id: str) -> list[EngineTurn]:
        """The remembered, not yet summarized turns, oldest first."""
        return (await self.snapshot(conversation_id)).history

    # -- writing (fenced) ------------------------------------------------------------------

    async def commit(
        self,
        lease: Lease,
        dedupe_keys: Sequence[str],
        entries: Sequence[MemoryEntry],
        outcome: str,
    ) -> CommitStatus:
        """Append `entries` and mark every message of the turn processed with `outcome`.

        Atomic and fenced: nothing is written unless `lease` still holds the lock. Releases
        the lock unless the overflow is due to be summarized.
        """
        keys = self.keys(lease.conversation_id)
        limits = self.limits
        result = await self._commit(
            keys=[
                lease.keys.lock,
                lease.keys.wake,
                keys.turns,
                keys.overflow,
                keys.summary,
                *(self.processed_key(lease.conversation_id, key) for key in dedupe_keys),
            ],
            args=[
                lease.token,
                limits.max_turns,
                limits.ttl_s,
                limits.processed_ttl_s,
                limits.summarize_after,
                limits.overflow_cap,
                outcome,
                *(entry.to_json() for entry in entries),
            ],
        )
        if result[0] == "fenced":
            return CommitStatus.FENCED
        return CommitStatus.DONE_RELEASED if int(result[1]) else CommitStatus.DONE_SUMMARY_DUE

    async def amend_last(self, lease: Lease, read: MemoryEntry, replacement: MemoryEntry) -> bool:
        """Replace the newest entry, if it is still `read` (fenced). False if fenced or changed.

        Used to cut a voice answer to what the caller heard before barging in.
        """
        keys = self.keys(lease.conversation_id)
        result = await self._amend_last(
            keys=[lease.keys.lock, keys.turns],
            args=[lease.token, read.to_json(), replacement.to_json(), self.limits.ttl_s],
        )
        return int(result) == 1

    async def fold_summary(self, lease: Lease, summary: str, folded: int) -> bool:
        """Store the new summary of the first `folded` overflow entries and release the lock."""
        keys = self.keys(lease.conversation_id)
        return bool(
            await self._fold(
                keys=[lease.keys.lock, lease.keys.wake, keys.overflow, keys.summary],
                args=[lease.token, summary, folded, self.limits.ttl_s],
            )
        )

    async def absorb(self, lease: Lease, source_conversation_id: str, dedupe_key: str) -> bool:
        """Merge another conversation's memory into the locked one (identity linking).

        Entries of both are interleaved by time; the source's summary is prepended to ours.
        The source is left in place (its keys expire); it is no longer resolved to. Returns
        False if fenced.
        """
        target = await self.snapshot(lease.conversation_id)
        entries = [*target.overflow, *target.recent]
        summary = target.summary
        if source_conversation_id != lease.conversation_id:
            source = await self.snapshot(source_conversation_id)
            entries = sorted([*source.overflow, *source.recent, *entries], key=lambda e: e.at)
            summary = " ".join(part for part in (source.summary, summary) if part)
        keys = self.keys(lease.conversation_id)
        return bool(
            await self._replace(
                keys=[
                    lease.keys.lock,
                    keys.turns,
                    keys.overflow,
                    keys.summary,
                    self.processed_key(lease.conversation_id, dedupe_key),
                ],
                args=[
                    lease.token,
                    summary,
                    self.limits.ttl_s,
                    self.limits.processed_ttl_s,
                    json.dumps({"merged_from": source_conversation_id}),
                    *(entry.to_json() for entry in entries),
                ],
            )
        )
