"""One turn of the brain: inbound message in, shaped `Reply` out. No framework code here.

Steps: skip what was already answered (republishing the same reply), load the shared
memory, ask the engine (an apology if it fails), shape for the channel, record the turn
atomically with the "handled" marker, publish the reply. Publishing after recording means a
crash in between is healed by redelivery: the answer is found on record and republished
with the same deterministic `reply_id`, and egress drops any duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Histogram

from services.brain.engines.base import Engine, EngineError, EngineRequest
from services.brain.memory import ConversationMemory
from services.brain.shaping import shape
from services.common.ops import OpsEmitter
from shared.contracts import InboundMessage, Lifecycle, MessageKind, Reply, reply_id_for
from shared.logs import get_logger
from shared.tracing import child_of

log = get_logger("brain.turns")

ReplySink = Callable[[Reply], Awaitable[None]]

TURNS = Counter("switchboard_brain_turns_total", "Turns handled", ["channel", "outcome"])
MODEL_SECONDS = Histogram("switchboard_brain_model_seconds", "Engine time per turn", ["engine"])


class TurnProcessor:
    """Answers inbound messages using memory and an engine; hands replies to `publish`."""

    def __init__(
        self,
        *,
        engine: Engine,
        memory: ConversationMemory,
        publish: ReplySink,
        ops: OpsEmitter,
        apology_text: str,
    ) -> None:
        self._engine = engine
        self._memory = memory
        self._publish = publish
        self._ops = ops
        self._apology_text = apology_text

    async def handle(self, message: InboundMessage) -> Reply | None:
        """Process one inbound message; returns the reply published, if any."""
        ids = _ids(message)
        if message.kind is not MessageKind.TEXT or not message.text.strip():
            # Partial transcripts and call control get behaviour with the voice channel.
            TURNS.labels(message.channel.value, "ignored").inc()
            return None
        answer = await self._memory.answer_of(message.dedupe_key)
        if answer is not None:
            await self._ops.emit(Lifecycle.DEDUPED, **ids)
            TURNS.labels(message.channel.value, "redelivered").inc()
        else:
            answer = await self._generate(message)
            answer = await self._memory.record_turn(
                message.conversation_id,
                message.dedupe_key,
                message.channel.value,
                message.text,
                answer,
            )
            TURNS.labels(message.channel.value, "answered").inc()
        reply = Reply(
            reply_id=reply_id_for(message),
            in_reply_to=message.provider_message_id,
            conversation_id=message.conversation_id,
            channel=message.channel,
            address=message.address,
            text=answer,
            reply=message.reply,
            trace=child_of(message.trace),
        )
        await self._publish(reply)
        await self._ops.emit(Lifecycle.REPLY_EMITTED, reply_id=reply.reply_id, **ids)
        return reply

    async def _generate(self, message: InboundMessage) -> str:
        ids = _ids(message)
        request = EngineRequest(
            conversation_id=message.conversation_id,
            channel=message.channel.value,
            user_text=message.text,
            history=await self._memory.history(message.conversation_id),
        )
        await self._ops.emit(Lifecycle.LLM_START, attributes={"engine": self._engine.name}, **ids)
        started = time.perf_counter()
        try:
            text = await self._engine.generate(request)
        except EngineError as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.warning("brain.engine.failed", engine=self._engine.name, error=str(exc))
            await self._ops.emit(
                Lifecycle.FAILED, reason=f"engine:{exc}", duration_ms=elapsed_ms, **ids
            )
            return shape(message.channel, self._apology_text)
        elapsed = time.perf_counter() - started
        MODEL_SECONDS.labels(self._engine.name).observe(elapsed)
        await self._ops.emit(Lifecycle.LLM_END, duration_ms=elapsed * 1000, **ids)
        return shape(message.channel, text)


def _ids(message: InboundMessage) -> dict[str, Any]:
    """The identifying fields of ops events about `message`."""
    return {
        "channel": message.channel,
        "conversation_id": message.conversation_id,
        "message_id": message.provider_message_id,
    }
