"""Test doubles around the brain's TurnProcessor: a scripted engine and recording sinks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from services.brain.engines.base import EngineError, EngineRequest, EngineTurn
from services.brain.locks import ConversationLocks
from services.brain.memory import ConversationMemory, MemoryLimits
from services.brain.turns import TurnProcessor
from services.common.ops import OpsEmitter
from shared.contracts import Reply, Stage

APOLOGY = "Sorry, I can't answer right now. A human will follow up."


@dataclass
class ScriptedEngine:
    """An Engine that answers from a script (or fails), recording every request.

    `chunk_delay_s` slows streaming between words; `gate`, when set, holds every answer
    until the test opens it.
    """

    answers: list[str] = field(default_factory=list)
    fail: bool = False
    chunk_delay_s: float = 0.0
    gate: asyncio.Event | None = None
    name: str = "scripted"
    requests: list[EngineRequest] = field(default_factory=list)
    summaries: list[tuple[str, list[EngineTurn]]] = field(default_factory=list)

    def _answer(self, request: EngineRequest) -> str:
        self.requests.append(request)
        if self.fail:
            raise EngineError("server_error", attempts=3)
        if self.answers:
            return self.answers.pop(0)
        return f"echo: {request.user_text}"

    async def generate(self, request: EngineRequest) -> str:
        answer = self._answer(request)
        if self.gate is not None:
            await self.gate.wait()
        return answer

    async def stream(self, request: EngineRequest) -> AsyncIterator[str]:
        answer = self._answer(request)
        for index, word in enumerate(answer.split(" ")):
            if self.gate is not None:
                await self.gate.wait()
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            yield word if index == 0 else f" {word}"

    async def summarize(
        self, previous_summary: str, turns: Sequence[EngineTurn], max_chars: int
    ) -> str:
        self.summaries.append((previous_summary, list(turns)))
        said = "; ".join(f"{t.channel}/{t.role}: {t.text}" for t in turns)
        return f"{previous_summary} | {said}".strip(" |")[:max_chars]

    async def aclose(self) -> None:
        pass


class RecordingBroker:
    """Stands in for the Kafka producer of OpsEmitter: records what would be published."""

    usable = True  # as a connected producer that is not in an outage

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))

    def steps(self) -> list[str]:
        return [json.loads(args[0])["step"] for args, _ in self.calls]


@dataclass
class Brain:
    """A TurnProcessor on real Redis with everything it emits recorded."""

    processor: TurnProcessor
    engine: ScriptedEngine
    memory: ConversationMemory
    locks: ConversationLocks
    published: list[Reply]
    ops: RecordingBroker


def make_brain(
    redis: Redis,
    prefix: str,
    *,
    engine: ScriptedEngine | None = None,
    limits: MemoryLimits | None = None,
    lock_ttl_ms: int = 5_000,
) -> Brain:
    """A brain wired like production, minus Kafka: replies and ops events go to lists.

    Shaping limits, collect windows and speaking rates come with each message's profile."""
    engine = engine or ScriptedEngine()
    memory = ConversationMemory(
        redis, prefix, limits or MemoryLimits(max_turns=20, ttl_s=3_600, processed_ttl_s=3_600)
    )
    locks = ConversationLocks(redis, redis, prefix, lock_ttl_ms)
    published: list[Reply] = []
    ops = RecordingBroker()

    async def publish(reply: Reply) -> None:
        published.append(reply)

    processor = TurnProcessor(
        engine=engine,
        memory=memory,
        locks=locks,
        publish=publish,
        ops=OpsEmitter(ops, "ops.v1", Stage.BRAIN, "brain-test"),  # type: ignore[arg-type]
        apology_text=APOLOGY,
        summary_max_chars=500,
    )
    return Brain(processor, engine, memory, locks, published, ops)
