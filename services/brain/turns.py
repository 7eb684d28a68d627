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
import json
from collections.abc import Sequence

from services.brain.call_turns import CallTurns
from services.brain.calls import (
    caller_said_goodbye,
    engine_text,
    is_control,
    remembered_text,
    streams_parts,
)
from services.brain.double_texting import Turn as Turn  # re-exported: the unit of work
from services.brain.engines.base import EngineError, EngineRequest
from services.brain.hangup import strip_marker
from services.brain.locks import Lease, LockLost
from services.brain.memory import CommitStatus, MemoryEntry, Snapshot
from services.brain.shaping import shape
from services.brain.turn_base import TURNS, Answer, ReplySink, actionable, budget_for, ids_of, log
from shared.contracts import InboundMessage, Lifecycle, MessageKind, Reply

__all__ = ["ReplySink", "Turn", "TurnProcessor"]


class TurnProcessor(CallTurns):
    """Answers turns using memory, a lock per conversation and an engine."""

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
            await self._ops.emit(Lifecycle.DEDUPED, reason="copy_in_turn", **ids_of(copy))
            TURNS.labels(copy.channel, "redelivered").inc()
        return replies

    async def _run(self, turn: Turn) -> list[Reply]:
        # `turn.messages` holds each provider message once; those processed by an earlier
        # turn are filtered out below, under the lock, even when the rest is new.
        messages = [m for m in turn.messages if actionable(m)]
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
                    Lifecycle.LOCK_WAIT, duration_ms=lease.waited_s * 1000, **ids_of(turn.first)
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
            await self._ops.emit(Lifecycle.DEDUPED, reason="already_processed", **ids_of(message))
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

    async def _answer(self, turn: Turn, snapshot: Snapshot, lease: Lease) -> list[Reply]:
        """Generate, record (releasing the lock) and publish; returns the turn's replies."""
        first = turn.first
        snapshot = await self._correct_to_heard(lease, snapshot, first)
        for extra in turn.messages[1:]:
            await self._ops.emit(
                Lifecycle.COLLECTED, attributes={"into": first.provider_message_id}, **ids_of(extra)
            )
        request = EngineRequest(
            conversation_id=first.conversation_id,
            channel=first.channel,
            user_text="\n".join(engine_text(m) for m in turn.messages),
            text_format=first.profile.text_format,
            history=snapshot.history,
            summary=snapshot.summary,
            budget_s=budget_for(first),
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
            await self._ops.emit(Lifecycle.REPLY_EMITTED, reply_id=reply.reply_id, **ids_of(first))
        if answer.replies[-1].end_call:
            log.info("brain.call.end_call", conversation_id=first.conversation_id)
        TURNS.labels(first.channel, "interrupted" if answer.interrupted else "answered").inc()
        if status is CommitStatus.DONE_SUMMARY_DUE:
            await self._summarize(lease)
        return answer.replies

    async def _write(
        self, turn: Turn, request: EngineRequest, lease: Lease, fallback: str
    ) -> Answer:
        """The whole answer at once (text channels, held requests), shaped for the channel."""
        first = turn.first
        # The marker is asked for on calls only, but a model that saw earlier call turns may
        # write it anywhere: it never reaches a customer, and it ends only a call.
        text, hangup = strip_marker(await self._generate(first, request, fallback))
        end_call = first.profile.spoken and (hangup or caller_said_goodbye(turn.messages))
        text = shape(first.profile, text)
        return Answer([self._reply(turn, lease, text, end_call=end_call)], said=text)

    async def _summarize(self, lease: Lease) -> None:
        """Fold the overflow into the running summary; keep the overflow if that fails."""
        snapshot = await self._memory.snapshot(lease.conversation_id)
        folded = [entry.as_engine_turn() for entry in snapshot.overflow]
        lost = asyncio.Event()
        try:
            # The summary is a model call too: a slow one outlived the lease and its fold was
            # refused as fenced (about 2 % of folds under load, a model call wasted each).
            async with self._locks.kept_alive(lease, lost.set):
                summary = await self._engine.summarize(
                    snapshot.summary, folded, self._summary_max_chars
                )
        except EngineError as exc:
            log.warning("brain.summary.failed", reason=exc.reason)
            await self._locks.release(lease)
            return
        if not await self._memory.fold_summary(lease, summary, len(folded)):
            log.warning("brain.summary.fenced", conversation_id=lease.conversation_id)
