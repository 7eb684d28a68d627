"""The shared base of a turn's steps: collaborators, engine calls, reply building, fencing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from services.brain.calls import GREETING_FALLBACK, is_control, is_spoken_answer
from services.brain.double_texting import Turn
from services.brain.engines.base import Engine, EngineError, EngineRequest
from services.brain.locks import ConversationLocks, Lease
from services.brain.memory import ConversationMemory
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
class Answer:
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


class TurnBase:
    """What every step of a turn shares: the collaborators, engine calls, replies, fencing.

    `TurnProcessor` (services.brain.turns) is the public face; this base and
    `CallTurns` (services.brain.call_turns) only split its steps over small modules.
    """

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

    async def _generate(
        self, message: InboundMessage, request: EngineRequest, fallback: str
    ) -> str:
        ids = ids_of(message)
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
        ids = ids_of(message)
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
            **ids_of(message),
        )

    async def _fenced(self, message: InboundMessage) -> None:
        log.warning("brain.lock.lost", conversation_id=message.conversation_id)
        await self._ops.emit(Lifecycle.FENCED, **ids_of(message))

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


def actionable(message: InboundMessage) -> bool:
    if message.kind is MessageKind.IDENTITY_LINKED or is_control(message):
        return True
    if message.profile.spoken:
        return is_spoken_answer(message)
    return message.kind is MessageKind.TEXT and bool(message.text.strip())


def budget_for(message: InboundMessage) -> float | None:
    """A sync caller's deadline bounds the model's budget (`None`: the configured default)."""
    deadline = message.reply.deadline_at
    if deadline is None:
        return None
    remaining = (deadline - datetime.now(UTC)).total_seconds() - SYNC_DEADLINE_MARGIN_S
    return max(remaining, 0.1)


def ids_of(message: InboundMessage) -> dict[str, Any]:
    """The identifying fields of ops events about `message`."""
    return {
        "channel": message.channel,
        "conversation_id": message.conversation_id,
        "message_id": message.provider_message_id,
    }
