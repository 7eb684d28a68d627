"""An instant engine: the brain's orchestration cost with zero model time and no HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from services.brain.engines.base import EngineRequest, EngineTurn
from services.brain.engines.summary import keep_newest


class InstantEngine:
    """Answers at once, like the fake model's default template ("You said: ...")."""

    name = "instant"

    async def generate(self, request: EngineRequest) -> str:
        return f"You said: {request.user_text}"

    async def stream(self, request: EngineRequest) -> AsyncIterator[str]:
        yield f"You said: {request.user_text}"

    async def summarize(
        self, previous_summary: str, turns: Sequence[EngineTurn], max_chars: int
    ) -> str:
        said = " ".join(f"{turn.role}: {turn.text}" for turn in turns)
        return keep_newest(f"{previous_summary} {said}".strip(), max_chars)

    async def aclose(self) -> None:
        pass
