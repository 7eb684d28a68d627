"""One turn of the brain: inbound message(s) in, shaped `Reply`(s) out. No Kafka code here.

A turn is one or more inbound messages of one conversation answered together (SMS texts sent
in quick succession are collected into one turn; see `services.brain.double_texting`).

1. Take the conversation lock; the same round trip reads memory and the messages'
   "processed" records.
2. Messages already processed get their recorded replies republished (same `reply_id`s;
   egress drops the duplicates) and nothing else happens for them, even when the rest of
   the turn is new. Copies of one provider message inside the turn count once (`Turn`).
3. The rest are answered: engine (an apology if it fails), shaping as the channel's profile
   asks. A channel that takes parts (calls) gets the answer sentence by sentence, so the
   caller hears the first sentence early, and a newer utterance can interrupt it (the turn
   records what was actually said). An answer somebody holds a request open for (reply mode
   SYNC) is one whole reply instead. Call control (call started / ended, the caller
   speaking) skips the engine and memory and becomes one OPEN / CLOSE / STOP reply (see
   `services.brain.calls`).
4. One fenced Lua script records the turn in memory, marks the messages processed and
   releases the lock. If the lock was lost meanwhile, nothing is written or published and
   the turn is retried by whoever owns the conversation now.
5. The replies are published. A crash before this is healed by redelivery (step 2).

A spoken answer ends the call (`Reply.end_call` on its final reply) when the caller's
utterance was a goodbye (`services.brain.goodbye`), even if the model answered something
else (the caller has already left in their mind), or when the model ended its answer with
the hangup marker (`services.brain.hangup`; it is never spoken nor remembered). An
interrupted answer never ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from services.brain.calls import (
    CONTROL_REPLIES,
    GREETING_FALLBACK,
    caller_said_goodbye,
    engine_text,
    is_control,
    is_spoken_answer,
    remembered_text,
    streams_parts,
)
from services.brain.double_texting import Turn as Turn  # re-exported: the unit of work
from services.brain.engines.base import Engine, EngineError, EngineRequest
from services.brain.hangup import MarkerFilter, strip_marker
from services.brain.heard import heard_part
from services.brain.locks import ConversationLocks, Lease, LockLost
from services.brain.memory import CommitStatus, ConversationMemory, MemoryEntry, Snapshot
from services.brain.sentences import sentences
from services.brain.shaping import shape
from services.common.ops import OpsEmitter
from shared.contracts import (
    InboundMessage,
    Lifecycle,
    MessageKind,
    Reply,
    ReplyKind,
    reply_id_for,
)
from shared.logs import get_logger
from shared.tracing import child_of

log = get_logger("brain.turns")

ReplySink = Callable[[Reply], Awaitable[None]]

TURNS = Counter("switchboard_brain_turns_total", "Turns handled", ["channel", "outcome"])
MODEL_SECONDS = Histogram("switchboard_brain_model_seconds", "Engine time per turn", ["engine"])

SYNC_DEADLINE_MARGIN_S = 0.3
"""Time kept back from a sync deadline for shaping, publishing and delivery."""


@dataclass
class _Answer:
    """What a turn produced and what the customer got to see or hear of it."""

    replies: list[Reply]
    """Every reply of the turn, in order: republished as they are on a redelivery."""
    said: str
    interrupted: bool = False
    already_published: int = 0
    """Leading replies that went out before the turn was recorded (voice sentences)."""
    speech_started: float | None = None
    """Voice: when the first sentence went out (wall clock, as memory entries are)."""

    @property
    def after_commit(self) -> list[Reply]:
        return self.replies[self.already_published :]


class TurnProcessor:
    """Answers turns using memory, a lock per conversation and an engine."""

    def __init__(
        self,
        *,
        engine: Engine,
        memory: ConversationMemory,
        locks: ConversationLocks,
        publish: ReplySink,
        ops: OpsEmitter,
        apology_text: str,
        summary_max_chars: int,
        greeting_fallback_text: str = GREETING_FALLBACK,
    ) -> None:
        self._engine = engine
        self._memory = self.memory = memory
        self._locks = self.locks = locks
        self._publish = publish
        self._ops = ops
        self._apology_text = apology_text
        self._summary_max_chars = summary_max_chars
        self._greeting_fallback_text = greeting_fallback_text

    async def handle(self, message: InboundMessage) -> list[Reply]:
        """Process a single message as its own turn (the common case)."""
        return await self.run(Turn([message]))

    async def run(self, turn: Turn) -> list[Reply]:
        """Process one turn; returns the replies published (republished ones included).

        Copies in the turn (`Turn.copies`) were never part of it; they are reported as
        deduplicated once the turn is durable, so a retried attempt does not report them twice.
        """
        replies = await self._run(turn)
        for copy in turn.copies:
            await self._ops.emit(Lifecycle.DEDUPED, reason="copy_in_turn", **_ids(copy))
            TURNS.labels(copy.channel, "redelivered").inc()
        return replies

    async def _run(self, turn: Turn) -> list[Reply]:
        # `turn.messages` holds each provider message once; those processed by an earlier
        # turn are filtered out below, under the lock, even when the rest is new.
        messages = [m for m in turn.messages if _actionable(m)]
        if not messages:
            TURNS.labels(turn.first.channel, "ignored").inc()
            return []
        keys = [m.dedupe_key for m in messages]
        conversation_id = turn.conversation_id
        lease, reads = await self._locks.acquire(
            conversation_id,
            lambda pipe: self._memory.queue_reads(pipe, conversation_id, keys),
        )
        snapshot = self._memory.snapshot_from(reads, keys)
        released = False
        try:
            if lease.contended:
                await self._ops.emit(
                    Lifecycle.LOCK_WAIT, duration_ms=lease.waited_s * 1000, **_ids(turn.first)
                )
            published = await self._republish_processed(messages, snapshot, lease)
            pending = [m for m in messages if m.dedupe_key not in snapshot.processed]
            if not pending:
                return published
            if pending[0].kind is MessageKind.IDENTITY_LINKED:
                await self._absorb(lease, pending[0])
                return published
            if is_control(pending[0]):  # the scheduler never mixes them with answered kinds
                replies = await self._control(lease, pending, snapshot)
                released = True
                return [*published, *replies]
            replies = await self._answer(Turn(pending, turn.interrupted), snapshot, lease)
            released = True
            return [*published, *replies]
        finally:
            if not released:
                await self._release(lease)

    async def _release(self, lease: Lease) -> None:
        """Release, retrying a transient Redis error: an unreleased lock stalls the
        conversation until its lease runs out."""
        for attempt in range(3):
            try:
                await self._locks.release(lease)
                return
            except RedisError:
                if attempt == 2:
                    log.warning("brain.lock.release_failed", conversation_id=lease.conversation_id)
                    return
                await asyncio.sleep(0.05 * (attempt + 1))

    # -- steps -----------------------------------------------------------------------------

    async def _republish_processed(
        self, messages: Sequence[InboundMessage], snapshot: Snapshot, lease: Lease
    ) -> list[Reply]:
        """Republish the recorded replies of messages handled before (a redelivery)."""
        published: list[Reply] = []
        seen: set[str] = set()
        for message in messages:
            outcome = snapshot.processed.get(message.dedupe_key)
            if outcome is None:
                continue
            await self._ops.emit(Lifecycle.DEDUPED, reason="already_processed", **_ids(message))
            TURNS.labels(message.channel, "redelivered").inc()
            for raw in json.loads(outcome).get("replies", []):
                reply = Reply.model_validate(raw).model_copy(update={"fence": lease.token})
                if reply.reply_id in seen:
                    continue
                seen.add(reply.reply_id)
                await self._publish(reply)
                published.append(reply)
        return published

    async def _absorb(self, lease: Lease, message: InboundMessage) -> None:
        """Identity linking: the chat session's earlier memory joins this conversation."""
        source = message.merge_from or message.conversation_id
        if not await self._memory.absorb(lease, source, message.dedupe_key):
            await self._fenced(message)
            raise LockLost(message.conversation_id)
        TURNS.labels(message.channel, "linked").inc()

    async def _control(
        self, lease: Lease, messages: Sequence[InboundMessage], snapshot: Snapshot
    ) -> list[Reply]:
        """Call control: one OPEN / CLOSE / STOP reply each; no engine, no new memory entry.

        The caller speaking (or hanging up) while the last answer is still playing cuts
        that answer in memory to what they heard (`services.brain.heard`).

        Fenced and recorded like any turn (under the lock the scheduler leaves free for it,
        so it costs one more Redis round trip): the reply carries a fence and a redelivery
        republishes it with the same `reply_id`, which egress drops.
        """
        replies = [
            self._reply(Turn([m]), lease, "", kind=CONTROL_REPLIES[m.kind]) for m in messages
        ]
        if any(m.kind is not MessageKind.CALL_STARTED for m in messages):
            await self._cut_to_heard(lease, snapshot, messages[0])
        outcome = json.dumps({"replies": [r.model_dump(mode="json") for r in replies]})
        status = await self._memory.commit(lease, [m.dedupe_key for m in messages], [], outcome)
        if status is CommitStatus.FENCED:
            await self._fenced(messages[0])
            raise LockLost(messages[0].conversation_id)
        if status is CommitStatus.DONE_SUMMARY_DUE:
            await self._release(lease)  # summarizing waits for the next answered turn
        for message, reply in zip(messages, replies, strict=True):
            await self._publish(reply)
            await self._ops.emit(Lifecycle.REPLY_EMITTED, reply_id=reply.reply_id, **_ids(message))
            TURNS.labels(message.channel, message.kind.value).inc()
        return replies

    async def _cut_to_heard(
        self, lease: Lease, snapshot: Snapshot, message: InboundMessage
    ) -> None:
        """Amend a spoken answer the caller talked over (or hung up on) while it played.

        Only a streamed spoken answer records when its speech started; anything else is left.
        """
        last = snapshot.recent[-1] if snapshot.recent else None
        if (
            last is None
            or last.role != "assistant"
            or last.interrupted
            or last.speech_started is None
        ):
            return
        rate = message.profile.speech_chars_per_s
        heard = heard_part(last.text, last.speech_started, time.time(), rate)
        if heard is None:
            return
        cut = replace(last, text=heard, interrupted=True)
        if await self._memory.amend_last(lease, last, cut):
            await self._ops.emit(
                Lifecycle.INTERRUPTED,
                attributes={"heard_chars": len(heard), "said_chars": len(last.text)},
                **_ids(message),
            )

    async def _answer(self, turn: Turn, snapshot: Snapshot, lease: Lease) -> list[Reply]:
        """Generate, record (releasing the lock) and publish; returns the turn's replies."""
        first = turn.first
        for extra in turn.messages[1:]:
            await self._ops.emit(
                Lifecycle.COLLECTED, attributes={"into": first.provider_message_id}, **_ids(extra)
            )
        request = EngineRequest(
            conversation_id=first.conversation_id,
            channel=first.channel,
            user_text="\n".join(engine_text(m) for m in turn.messages),
            text_format=first.profile.text_format,
            history=snapshot.history,
            summary=snapshot.summary,
            budget_s=_budget_for(first),
        )
        fallback = self._apology_text
        if first.kind is MessageKind.GREETING:
            fallback = self._greeting_fallback_text
        lost = asyncio.Event()
        async with self._locks.kept_alive(lease, lost.set):
            if streams_parts(first):
                answer = await self._speak(turn, request, lease, lost, fallback)
            else:
                answer = await self._write(turn, request, lease, fallback)
        entries = [
            MemoryEntry("user", said, m.channel)
            for m in turn.messages
            if (said := remembered_text(m)) is not None
        ]
        entries.append(
            MemoryEntry(
                "assistant",
                answer.said,
                first.channel,
                interrupted=answer.interrupted,
                speech_started=answer.speech_started,
            )
        )
        outcome = json.dumps(
            {
                "replies": []
                if answer.interrupted
                else [r.model_dump(mode="json") for r in answer.replies],
                "interrupted": answer.interrupted,
            }
        )
        status = await self._memory.commit(
            lease, [m.dedupe_key for m in turn.messages], entries, outcome
        )
        if status is CommitStatus.FENCED:
            await self._fenced(first)
            raise LockLost(first.conversation_id)
        for reply in answer.after_commit:
            await self._publish(reply)
            await self._ops.emit(Lifecycle.REPLY_EMITTED, reply_id=reply.reply_id, **_ids(first))
        if answer.replies[-1].end_call:
            log.info("brain.call.end_call", conversation_id=first.conversation_id)
        TURNS.labels(first.channel, "interrupted" if answer.interrupted else "answered").inc()
        if status is CommitStatus.DONE_SUMMARY_DUE:
            await self._summarize(lease)
        return answer.replies

    async def _write(
        self, turn: Turn, request: EngineRequest, lease: Lease, fallback: str
    ) -> _Answer:
        """The whole answer at once (text channels, held requests), shaped for the channel."""
        first = turn.first
        text = await self._generate(first, request, fallback)
        end_call = False
        if first.profile.spoken:  # the hangup marker is asked for on calls only
            text, hangup = strip_marker(text)
            end_call = hangup or caller_said_goodbye(turn.messages)
        text = shape(first.profile, text)
        return _Answer([self._reply(turn, lease, text, end_call=end_call)], said=text)

    async def _speak(
        self,
        turn: Turn,
        request: EngineRequest,
        lease: Lease,
        lost: asyncio.Event,
        fallback: str,
    ) -> _Answer:
        """Stream sentence by sentence; a barge-in stops it where the caller was.

        Each sentence is published as soon as it is complete (after checking the lock is
        still ours), so what was said is exactly the published parts.
        """
        first = turn.first
        said: list[str] = []
        replies: list[Reply] = []
        first_part_at: list[float] = []
        marker = MarkerFilter()

        async def produce() -> None:
            budget = first.profile.max_chars
            deltas = self._stream(first, request)
            unmarked = marker.filter(deltas)
            try:
                async with (
                    contextlib.aclosing(deltas),
                    contextlib.aclosing(unmarked),
                    contextlib.aclosing(sentences(unmarked)) as spoken_sentences,
                ):
                    async for sentence in spoken_sentences:
                        spoken = shape(first.profile, sentence)
                        if not spoken:
                            continue
                        if said and len(" ".join(said)) + 1 + len(spoken) > budget:
                            break
                        await self._emit_part(turn, lease, spoken, len(replies), replies)
                        if not first_part_at:
                            first_part_at.append(time.time())
                        said.append(spoken)
            except EngineError:
                apology = shape(first.profile, fallback)
                await self._emit_part(turn, lease, apology, len(replies), replies)
                said.append(apology)

        producer = asyncio.create_task(produce())
        interrupted = asyncio.create_task(turn.interrupted.wait())
        lock_lost = asyncio.create_task(lost.wait())
        try:
            await asyncio.wait(
                {producer, interrupted, lock_lost}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (interrupted, lock_lost):
                task.cancel()
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            if lost.is_set():
                raise LockLost(first.conversation_id)
            stop = self._reply(turn, lease, "", part=len(replies), kind=ReplyKind.STOP)
            await self._publish(stop)
            await self._ops.emit(
                Lifecycle.INTERRUPTED, attributes={"parts_said": len(said)}, **_ids(first)
            )
            return _Answer(
                [*replies, stop],
                " ".join(said),
                interrupted=True,
                already_published=len(replies) + 1,
            )
        producer.result()
        end_call = marker.found or caller_said_goodbye(turn.messages)
        final = self._reply(turn, lease, "", part=len(replies), end_call=end_call)
        return _Answer(
            [*replies, final],
            " ".join(said),
            already_published=len(replies),
            speech_started=first_part_at[0] if first_part_at else None,
        )

    async def _emit_part(
        self, turn: Turn, lease: Lease, text: str, part: int, replies: list[Reply]
    ) -> None:
        # Parts go out before the turn is recorded (the caller is waiting), so each
        # is fenced on its own: a worker that lost the lock stops talking.
        if not await self._locks.extend(lease):
            await self._fenced(turn.first)
            raise LockLost(turn.conversation_id)
        reply = self._reply(turn, lease, text, part=part, final=False)
        await self._publish(reply)
        replies.append(reply)

    async def _summarize(self, lease: Lease) -> None:
        """Fold the overflow into the running summary; keep the overflow if that fails."""
        snapshot = await self._memory.snapshot(lease.conversation_id)
        folded = [entry.as_engine_turn() for entry in snapshot.overflow]
        try:
            summary = await self._engine.summarize(
                snapshot.summary, folded, self._summary_max_chars
            )
        except EngineError as exc:
            log.warning("brain.summary.failed", reason=exc.reason)
            await self._locks.release(lease)
            return
        if not await self._memory.fold_summary(lease, summary, len(folded)):
            log.warning("brain.summary.fenced", conversation_id=lease.conversation_id)

    async def _generate(
        self, message: InboundMessage, request: EngineRequest, fallback: str
    ) -> str:
        ids = _ids(message)
        await self._ops.emit(Lifecycle.LLM_START, attributes={"engine": self._engine.name}, **ids)
        started = time.perf_counter()
        try:
            text = await self._engine.generate(request)
        except EngineError as exc:
            await self._engine_failed(message, exc, started)
            return fallback
        elapsed = time.perf_counter() - started
        MODEL_SECONDS.labels(self._engine.name).observe(elapsed)
        await self._ops.emit(Lifecycle.LLM_END, duration_ms=elapsed * 1000, **ids)
        return text

    async def _stream(
        self, message: InboundMessage, request: EngineRequest
    ) -> AsyncGenerator[str, None]:
        ids = _ids(message)
        await self._ops.emit(Lifecycle.LLM_START, attributes={"engine": self._engine.name}, **ids)
        started = time.perf_counter()
        try:
            async for delta in self._engine.stream(request):
                yield delta
        except EngineError as exc:
            await self._engine_failed(message, exc, started)
            raise
        elapsed = time.perf_counter() - started
        MODEL_SECONDS.labels(self._engine.name).observe(elapsed)
        await self._ops.emit(Lifecycle.LLM_END, duration_ms=elapsed * 1000, **ids)

    async def _engine_failed(
        self, message: InboundMessage, exc: EngineError, started: float
    ) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.warning("brain.engine.failed", engine=self._engine.name, reason=exc.reason)
        await self._ops.emit(
            Lifecycle.FAILED,
            reason=f"engine:{exc.reason}",
            duration_ms=elapsed_ms,
            attributes={"attempts": exc.attempts},
            **_ids(message),
        )

    async def _fenced(self, message: InboundMessage) -> None:
        log.warning("brain.lock.lost", conversation_id=message.conversation_id)
        await self._ops.emit(Lifecycle.FENCED, **_ids(message))

    def _reply(
        self,
        turn: Turn,
        lease: Lease,
        text: str,
        *,
        part: int = 0,
        final: bool = True,
        kind: ReplyKind = ReplyKind.MESSAGE,
        end_call: bool = False,
    ) -> Reply:
        first = turn.first
        return Reply(
            reply_id=reply_id_for(first, part),
            in_reply_to=first.provider_message_id,
            covers=[m.provider_message_id for m in turn.messages] if len(turn.messages) > 1 else [],
            conversation_id=first.conversation_id,
            channel=first.channel,
            address=turn.messages[-1].address,
            kind=kind,
            text=text,
            part=part,
            final=final,
            end_call=end_call,
            fence=lease.token,
            reply=turn.messages[-1].reply,
            trace=child_of(first.trace),
        )


def _actionable(message: InboundMessage) -> bool:
    if message.kind is MessageKind.IDENTITY_LINKED or is_control(message):
        return True
    if message.profile.spoken:
        return is_spoken_answer(message)
    return message.kind is MessageKind.TEXT and bool(message.text.strip())


def _budget_for(message: InboundMessage) -> float | None:
    """A sync caller's deadline bounds the model's budget (`None`: the configured default)."""
    deadline = message.reply.deadline_at
    if deadline is None:
        return None
    remaining = (deadline - datetime.now(UTC)).total_seconds() - SYNC_DEADLINE_MARGIN_S
    return max(remaining, 0.1)


def _ids(message: InboundMessage) -> dict[str, Any]:
    """The identifying fields of ops events about `message`."""
    return {
        "channel": message.channel,
        "conversation_id": message.conversation_id,
        "message_id": message.provider_message_id,
    }
