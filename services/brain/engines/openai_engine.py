"""Engine backed by any OpenAI-compatible chat completions server, through the `openai` SDK."""

from __future__ import annotations

import asyncio

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from services.brain.engines.base import EngineError, EngineRequest
from services.brain.prompt import system_prompt


class OpenAIEngine:
    """Asks the model server; the SDK retries 429/5xx/timeouts with jittered backoff.

    `turn_budget_s` caps the whole attempt, retries included, so a struggling server turns
    into an `EngineError` (and the customer's apology) instead of a stuck conversation.
    """

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None,
        timeout_s: float,
        max_retries: int,
        turn_budget_s: float,
    ) -> None:
        self._client = AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )
        self._model = model
        self._turn_budget_s = turn_budget_s

    async def generate(self, request: EngineRequest) -> str:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system_prompt(request.channel, request.summary)}
        ]
        for turn in request.history:
            if turn.role == "user":
                messages.append({"role": "user", "content": turn.text})
            else:
                messages.append({"role": "assistant", "content": turn.text})
        messages.append({"role": "user", "content": request.user_text})
        try:
            completion = await asyncio.wait_for(
                self._client.chat.completions.create(model=self._model, messages=messages),
                self._turn_budget_s,
            )
        except (TimeoutError, openai.APIError) as exc:
            raise EngineError(type(exc).__name__) from exc
        content = completion.choices[0].message.content if completion.choices else None
        if not content or not content.strip():
            raise EngineError("empty_completion")
        return content.strip()

    async def aclose(self) -> None:
        await self._client.close()
