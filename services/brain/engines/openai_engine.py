"""Engine backed by any OpenAI-compatible chat completions server, through the `openai` SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from services.brain.engines.base import EngineError, EngineRequest, EngineTurn
from services.brain.engines.retry import Failure, run_with_retries
from services.brain.engines.summary import keep_newest
from services.brain.prompt import summary_input, summary_instructions, system_prompt
from services.common.backoff import RetryPolicy
from services.common.retry_after import retry_after_s

T = TypeVar("T")
Chunks = AsyncStream[dict[str, Any]]
"""A streamed completion's chunks as the JSON objects the server sent (see `stream`)."""


class OpenAIEngine:
    """Asks the model server, retrying with our `RetryPolicy` inside a per-turn budget.

    The SDK's own retries are off (`max_retries=0` on the client) so there is one policy.
    `turn_budget_s` caps a whole answer, retries and waits included (a request's `budget_s`
    overrides it), so a struggling server becomes an `EngineError` (and the customer's
    apology) instead of a stuck conversation. Summaries get `summary_budget_s` (default half
    the turn budget): they run beside the conversation and the caller has a fallback.
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
        backoff_base_s: float = 0.25,
        backoff_cap_s: float = 4.0,
        summary_budget_s: float | None = None,
    ) -> None:
        self._client = AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
        )
        self._model = model
        self._timeout_s = timeout_s
        self._policy = RetryPolicy(
            max_attempts=max_retries + 1, base_s=backoff_base_s, cap_s=backoff_cap_s
        )
        self._turn_budget_s = turn_budget_s
        self._summary_budget_s = summary_budget_s or turn_budget_s / 2

    async def generate(self, request: EngineRequest) -> str:
        messages = _chat_messages(request)

        async def attempt(timeout_s: float) -> str:
            completion = await self._client.chat.completions.create(
                model=self._model, **as_sent(messages), timeout=timeout_s
            )
            return _completion_text(completion)

        text, _ = await self._retrying(attempt, self._budget(request))
        return text

    async def stream(self, request: EngineRequest) -> AsyncIterator[str]:
        messages = _chat_messages(request)
        loop = asyncio.get_running_loop()

        async def attempt(timeout_s: float) -> tuple[Chunks, str, float]:
            # The attempt lasts until the first delta: only then is it safe to retry.
            deadline = loop.time() + timeout_s
            # The SDK's own request path (its errors, its SSE reading, `[DONE]` and in-band
            # error events), but chunks kept as the JSON objects they are: building a typed
            # `ChatCompletionChunk` per token cost ~0.1 ms each, ~1.4 ms of CPU before a
            # 14-word first sentence could be spoken (docs/benchmarks.md, "VAPI custom LLM").
            chunks = await self._client.post(
                "/chat/completions",
                body={"model": self._model, "messages": messages, "stream": True},
                cast_to=dict,
                stream=True,
                stream_cls=Chunks,
                options={"timeout": timeout_s},
            )
            try:
                first = await _next_text(chunks, first=True)
            except BaseException:
                await chunks.close()
                raise
            if first is None:
                await chunks.close()
                raise EngineError("empty_completion", detail="stream ended without text")
            return chunks, first, deadline

        (chunks, first, deadline), attempts = await self._retrying(attempt, self._budget(request))
        try:
            yield first
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        text = await _next_text(chunks)
                except TimeoutError as exc:
                    detail = "stream outlived its attempt timeout"
                    raise EngineError("timeout", attempts=attempts, detail=detail) from exc
                except openai.APIError as exc:
                    failure = classify_openai_error(exc) or Failure("server_error", False)
                    detail = f"broke off mid-stream: {failure.detail}"
                    raise EngineError(failure.reason, attempts=attempts, detail=detail) from exc
                if text is None:
                    return
                yield text
        finally:
            await chunks.close()

    async def summarize(
        self, previous_summary: str, turns: Sequence[EngineTurn], max_chars: int
    ) -> str:
        if not turns:
            return keep_newest(previous_summary, max_chars)
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": summary_instructions(max_chars)},
            {"role": "user", "content": summary_input(previous_summary, turns)},
        ]

        async def attempt(timeout_s: float) -> str:
            completion = await self._client.chat.completions.create(
                model=self._model,
                **as_sent(messages),
                # Roughly 4 characters a token; the slack lets the model finish its sentence.
                max_tokens=max(32, max_chars // 3),
                timeout=timeout_s,
            )
            return _completion_text(completion)

        text, _ = await self._retrying(attempt, self._summary_budget_s)
        return keep_newest(text, max_chars)

    async def aclose(self) -> None:
        await self._client.close()

    def _budget(self, request: EngineRequest) -> float:
        return self._turn_budget_s if request.budget_s is None else request.budget_s

    async def _retrying(
        self, attempt: Callable[[float], Awaitable[T]], budget_s: float
    ) -> tuple[T, int]:
        return await run_with_retries(
            attempt,
            policy=self._policy,
            budget_s=budget_s,
            attempt_timeout_s=self._timeout_s,
            classify=classify_openai_error,
        )


def classify_openai_error(exc: Exception) -> Failure | None:
    """Retry timeouts, connection errors, 429 and 5xx; honour Retry-After on 429 and 503."""
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", True, detail="APITimeoutError")
    if isinstance(exc, openai.APIConnectionError):
        return Failure("connection", True, detail="APIConnectionError")
    if isinstance(exc, openai.APIStatusError):
        status, detail = exc.status_code, f"{type(exc).__name__} {exc.status_code}"
        hint = retry_after_s(exc.response.headers) if status in (429, 503) else None
        if status == 429:
            return Failure("rate_limited", True, hint, detail)
        if status >= 500:
            return Failure("server_error", True, hint, detail)
        return Failure("client_error", False, detail=detail)
    if isinstance(exc, openai.APIError):
        # No status: an error event inside a stream, or a body that is not a completion.
        return Failure("server_error", True, detail=type(exc).__name__)
    return None


def as_sent(messages: list[ChatCompletionMessageParam]) -> dict[str, Any]:
    """The `messages` arguments of a create call, passed through `extra_body` as they are.

    The SDK walks a `messages` argument recursively against its TypedDicts (renaming aliased
    keys, formatting dates and files) before it sends it: about 3 ms of CPU per turn with a
    20-turn history, paid before the model sees the request (docs/benchmarks.md, "VAPI
    custom LLM"). Ours are plain role/content string pairs the walk leaves unchanged, so they
    go in `extra_body`, which the SDK sends untouched and which replaces the empty list.
    """
    return {"messages": [], "extra_body": {"messages": messages}}


def _chat_messages(request: EngineRequest) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": system_prompt(request.text_format, request.summary)}
    ]
    for turn in request.history:
        if turn.role == "user":
            messages.append({"role": "user", "content": turn.text})
        else:
            messages.append({"role": "assistant", "content": turn.text})
    messages.append({"role": "user", "content": request.user_text})
    return messages


def _completion_text(completion: ChatCompletion) -> str:
    content = completion.choices[0].message.content if completion.choices else None
    if not content or not content.strip():
        raise EngineError("empty_completion", detail="completion had no text")
    return content.strip()


async def _next_text(chunks: Chunks, *, first: bool = False) -> str | None:
    """The next non-empty content delta, or None at the end of the stream.

    The `first` delta loses its leading whitespace (as `generate` strips its answer).
    """
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return None
        text = _delta_text(chunk)
        if text and first:
            text = text.lstrip()
        if text:
            return text


def _delta_text(chunk: object) -> str | None:
    """`choices[0].delta.content` of a chunk, or None where the server sent none (or
    something that is not a chunk: a model server is trusted with text, not with shapes)."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else None
