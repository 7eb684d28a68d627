"""The steps of a turn on a spoken channel: call control, what a caller heard, and the
answer streamed sentence by sentence that a barge-in stops (see services.brain.calls)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import replace

from services.brain.calls import CONTROL_REPLIES, caller_said_goodbye
from services.brain.double_texting import Turn
from services.brain.engines.base import EngineError, EngineRequest
from services.brain.hangup import MarkerFilter
from services.brain.heard import heard_part
from services.brain.locks import Lease, LockLost
from services.brain.memory import CommitStatus, Snapshot
from services.brain.sentences import sentences
from services.brain.shaping import shape
from services.brain.turn_base import TURNS, Answer, TurnBase, ids_of
from shared.contracts import InboundMessage, Lifecycle, MessageKind, Reply, ReplyKind


class CallTurns(TurnBase):
    """Call control and streamed spoken answers."""

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
            await self._ops.emit(
                Lifecycle.REPLY_EMITTED, reply_id=reply.reply_id, **ids_of(message)
            )
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
                **ids_of(message),
            )

    async def _correct_to_heard(
        self, lease: Lease, snapshot: Snapshot, message: InboundMessage
    ) -> Snapshot:
        """Correct memory's last answer to what the provider says the caller heard of it.

        A speech channel that knows (VAPI's transcription of what was spoken, sent back with
        the next turn) says so in `InboundMessage.heard`; that is more exact than the
        estimate a barge-in leaves (`_cut_to_heard`). Returns the snapshot as corrected.
        """
        last = snapshot.recent[-1] if snapshot.recent else None
        if (
            message.heard is None
            or not message.profile.spoken
            or last is None
            or last.role != "assistant"
            or last.channel != message.channel
        ):
            return snapshot
        heard = " ".join(message.heard.split())
        if heard == " ".join(last.text.split()):
            return snapshot
        cut = replace(last, text=heard, interrupted=last.interrupted or len(heard) < len(last.text))
        if not await self._memory.amend_last(lease, last, cut):
            return snapshot
        await self._ops.emit(
            Lifecycle.INTERRUPTED,
            attributes={"heard_chars": len(heard), "said_chars": len(last.text), "exact": True},
            **ids_of(message),
        )
        return replace(snapshot, recent=[*snapshot.recent[:-1], cut])

    async def _speak(
        self,
        turn: Turn,
        request: EngineRequest,
        lease: Lease,
        lost: asyncio.Event,
        fallback: str,
    ) -> Answer:
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
                Lifecycle.INTERRUPTED, attributes={"parts_said": len(said)}, **ids_of(first)
            )
            return Answer(
                [*replies, stop],
                " ".join(said),
                interrupted=True,
                already_published=len(replies) + 1,
            )
        producer.result()
        end_call = marker.found or caller_said_goodbye(turn.messages)
        final = self._reply(turn, lease, "", part=len(replies), end_call=end_call)
        return Answer(
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
