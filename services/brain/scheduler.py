"""Key-ordered concurrency inside one partition.

Records of one partition are queued per Kafka key (the conversation id). Each key with work
has one runner task that takes turns off its queue strictly in offset order; different keys
run concurrently, bounded by a slot semaphore shared by every partition of the worker. A
record's offset is marked finished only when its turn is durable, and the partition commits
the end of the contiguous finished prefix (`PartitionOffsets`), so a slow model call holds
up nothing but its own conversation and a crash loses nothing.

The double-texting policy decides how queued records form turns: SMS bursts are collected
into one turn, and the caller speaking again (or hanging up) interrupts the running voice
answer. A queued voice answer starts interrupted when a newer final input (transcript, keys,
hangup) is already queued behind it; a partial transcript behind it does not make it moot,
but that partial's STOP is then dropped: it would cut the answer it predates (see
`DoubleTextingPolicy`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import islice

from aiokafka import ConsumerRecord

from services.brain.double_texting import DoubleTextingPolicy, Turn
from services.brain.offsets import PartitionOffsets
from services.common.consuming import PoisonEvent
from shared.contracts import InboundMessage
from shared.logs import get_logger

log = get_logger("brain.scheduler")


@dataclass(frozen=True)
class Work:
    """One fetched record: its parsed message, or why it could not be parsed."""

    record: ConsumerRecord
    message: InboundMessage | None
    poison: PoisonEvent | None = None


TurnHandler = Callable[[Sequence[Work], Turn | None], Awaitable[None]]
"""Runs a turn to a durable outcome (answered or dead-lettered); `Turn` is None for poison."""


class PartitionScheduler:
    """Runs the records of one assigned partition, key-ordered and concurrent across keys."""

    def __init__(
        self,
        partition: int,
        handle: TurnHandler,
        policy: DoubleTextingPolicy,
        slots: asyncio.Semaphore,
    ) -> None:
        self.partition = partition
        self.offsets = PartitionOffsets()
        self._handle = handle
        self._policy = policy
        self._slots = slots
        self._queues: dict[bytes | None, deque[Work]] = {}
        self._runners: dict[bytes | None, asyncio.Task[None]] = {}
        self._running: dict[bytes | None, Turn] = {}
        self._arrived: dict[bytes | None, asyncio.Event] = {}
        self._moot_stops: set[int] = set()
        """Offsets of partial transcripts queued behind a voice answer that has started."""
        self._closing = False

    @property
    def in_flight(self) -> int:
        return self.offsets.in_flight

    def add(self, work: Work) -> None:
        """Queue a record behind the earlier ones of its key (call in offset order)."""
        key = work.record.key
        self.offsets.received(work.record.offset)
        self._queues.setdefault(key, deque()).append(work)
        running = self._running.get(key)
        if (
            running is not None
            and work.message is not None
            and self._policy.interrupts(running.first, work.message)
        ):
            running.interrupt()
        if key in self._arrived:
            self._arrived[key].set()
        if key not in self._runners and not self._closing:
            self._runners[key] = asyncio.create_task(self._run_key(key))

    async def _run_key(self, key: bytes | None) -> None:
        queue = self._queues[key]
        try:
            while queue and not self._closing:
                batch = await self._next_batch(key, queue)
                if self._closing:  # revoked while the SMS burst was collecting
                    break
                if batch[0].record.offset in self._moot_stops:
                    self._finish(queue, batch)
                    continue
                messages = [w.message for w in batch if w.message is not None]
                turn = Turn(messages) if messages else None
                if turn is not None:
                    self._running[key] = turn  # interruptible while waiting for a slot too
                    if self._superseded(turn, queue, len(batch)):
                        turn.interrupt()
                    self._note_moot_stops(turn, queue, len(batch))
                try:
                    async with self._slots:
                        if self._closing:  # revoked while waiting for a slot
                            break
                        await self._handle(batch, turn)
                except Exception:
                    # The handler retries and dead-letters by itself; reaching here is a bug.
                    # Keep the records (never skip one) and try again shortly, slot freed.
                    log.exception("brain.scheduler.handler_failed", partition=self.partition)
                    await asyncio.sleep(1.0)
                    continue
                finally:
                    self._running.pop(key, None)
                self._finish(queue, batch)
        finally:
            self._runners.pop(key, None)
            self._arrived.pop(key, None)
            if not queue:
                self._queues.pop(key, None)

    def _finish(self, queue: deque[Work], batch: Sequence[Work]) -> None:
        for work in batch:
            queue.popleft()
            self.offsets.finished(work.record.offset)
            self._moot_stops.discard(work.record.offset)

    def _superseded(self, turn: Turn, queue: deque[Work], batch_size: int) -> bool:
        """A newer final input (not a mere partial) queued behind this voice turn makes it
        moot: the caller has moved on before hearing anything."""
        return any(
            work.message is not None and self._policy.supersedes(turn.first, work.message)
            for work in islice(queue, batch_size, None)
        )

    def _note_moot_stops(self, turn: Turn, queue: deque[Work], batch_size: int) -> None:
        """Partials already queued behind a starting voice answer will not stop it: the
        caller began speaking before that answer existed, and it still deserves hearing."""
        for work in islice(queue, batch_size, None):
            if work.message is not None and self._policy.predates_answer(work.message, turn.first):
                self._moot_stops.add(work.record.offset)

    async def _next_batch(self, key: bytes | None, queue: deque[Work]) -> list[Work]:
        """The head record, plus the SMS texts that join its burst (waiting for the window).

        Provider retries of a text already in the burst ride along (their offsets finish with
        the turn, which keeps one copy: `Turn`), but they are no new text: they neither count
        toward the cap nor move the window, which follows the latest *distinct* text.
        """
        while True:
            batch = [queue[0]]
            head = batch[0].message
            if head is None or not self._policy.collects(head):
                return batch
            texts = [head]
            for work in islice(queue, 1, None):
                if work.message is not None and self._policy.absorbs(texts, work.message):
                    batch.append(work)
                    continue
                if (
                    work.message is None
                    or len(texts) >= self._policy.max_collected
                    or not self._policy.joins(texts[-1], work.message)
                ):
                    return batch  # the burst is closed by what follows it
                batch.append(work)
                texts.append(work.message)
            wait = self._policy.wait_s(texts[-1])
            if wait <= 0 or len(texts) >= self._policy.max_collected:
                return batch
            arrived = self._arrived.setdefault(key, asyncio.Event())
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), wait)

    async def drain(self, timeout_s: float) -> None:
        """Stop starting turns; give running ones `timeout_s` to finish, then cancel the rest.

        Offsets of cancelled turns are not marked finished, so they are never committed and
        the partition's next owner redoes them (idempotently).
        """
        self._closing = True
        runners = list(self._runners.values())
        if runners:
            _, pending = await asyncio.wait(runners, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
