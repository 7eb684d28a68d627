"""Reading a custom LLM's answer as VAPI does (providers.md 3.5), strictly.

The call fails (``pipeline-error-custom-llm-*``) on a non-2xx answer, a timeout, a body that
is not an event stream, a chunk that is not JSON or has no ``choices`` array ("chunk.choices
is not iterable"), or a stream that ends without ``data: [DONE]``. Spoken text is the
``delta.content`` of every choice with ``<flush />`` tags removed; a barge-in closes the
stream once ``interrupt_after_chars`` characters were heard.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.channels.vapi.fake.jsonish import obj

FLUSH = re.compile(r"<\s*flush\s*/?\s*>", re.IGNORECASE)
LLM_FAILED = "pipeline-error-custom-llm-llm-failed"
_BY_STATUS = {
    400: "pipeline-error-custom-llm-400-bad-request-validation-failed",
    401: "pipeline-error-custom-llm-401-unauthorized",
    403: "pipeline-error-custom-llm-403-model-access-denied",
    429: "pipeline-error-custom-llm-429-exceeded-quota",
    500: "pipeline-error-custom-llm-500-server-error",
    503: "pipeline-error-custom-llm-503-server-overloaded-error",
}


def spoken(text: str) -> str:
    """What TTS says of model output: ``<flush />`` tags removed."""
    return FLUSH.sub("", text)


@dataclass
class StreamOutcome:
    """One custom-LLM request as VAPI read it. ``ended_reason`` is set when it failed."""

    status_code: int | None = None
    model_output: str = ""
    heard: str = ""
    chunks: int = 0
    done: bool = False
    interrupted: bool = False
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    ended_reason: str | None = None
    first_token_s: float | None = None
    elapsed_s: float = 0.0

    def fail(self, reason: str, error: str) -> StreamOutcome:
        self.ended_reason, self.error = reason, error
        return self


def _tool_call_parts(outcome: StreamOutcome, deltas: Any) -> None:
    """Merge streamed ``delta.tool_calls`` (by index) into whole calls."""
    for part in deltas if isinstance(deltas, list) else []:
        if not isinstance(part, dict):
            continue
        index = part.get("index", 0)
        if not isinstance(index, int) or not 0 <= index < 16:
            continue
        while len(outcome.tool_calls) <= index:
            outcome.tool_calls.append({"id": "", "function": {"name": "", "arguments": ""}})
        call = outcome.tool_calls[index]
        call["id"] = part.get("id") or call["id"]
        function = obj(part.get("function"))
        call["function"]["name"] += str(function.get("name") or "")
        call["function"]["arguments"] += str(function.get("arguments") or "")


def _chunk(outcome: StreamOutcome, data: str) -> str | None:
    """Apply one ``data:`` payload; a reason string when it breaks the call."""
    try:
        chunk = json.loads(data)
    except ValueError:
        return "a chunk is not JSON"
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list):
        return "a chunk has no choices array (VAPI: chunk.choices is not iterable)"
    outcome.chunks += 1
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str):
                outcome.model_output += content
            _tool_call_parts(outcome, delta.get("tool_calls"))
        if isinstance(choice, dict) and choice.get("finish_reason"):
            outcome.finish_reason = str(choice["finish_reason"])
    return None


async def _read_events(
    response: httpx.Response, outcome: StreamOutcome, interrupt_after: int | None, started: float
) -> None:
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line.strip() or not data:
            continue  # comments, event:/id: fields, stray blank lines
        payload, data = "\n".join(data), []
        if _event(outcome, payload, interrupt_after, started):
            return
    if data:  # the last event, without the blank line that should end it
        _event(outcome, "\n".join(data), interrupt_after, started)


def _event(
    outcome: StreamOutcome, payload: str, interrupt_after: int | None, started: float
) -> bool:
    """Apply one event; True when reading stops ([DONE], a broken chunk, a barge-in)."""
    if payload.strip() == "[DONE]":
        outcome.done = True
        return True
    problem = _chunk(outcome, payload)
    if problem:
        outcome.fail(LLM_FAILED, problem)
        return True
    if outcome.first_token_s is None and outcome.model_output:
        outcome.first_token_s = time.monotonic() - started
    outcome.heard = spoken(outcome.model_output)
    if interrupt_after is not None and len(outcome.heard) >= interrupt_after:
        outcome.heard = outcome.heard[:interrupt_after]
        outcome.interrupted = True
        return True  # the caller talked over it: VAPI stops listening to this answer
    return False


async def read_answer(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    timeout_s: float,
    turn_timeout_s: float,
    interrupt_after_chars: int | None = None,
    outcome: StreamOutcome | None = None,
) -> StreamOutcome:
    """POST ``body`` to the custom LLM and read its answer as VAPI does (never raises for it).

    ``outcome`` is filled in as chunks arrive, so a caller that cancels the read (the call
    was ended meanwhile) still sees what was heard until then.
    """
    outcome = outcome if outcome is not None else StreamOutcome()
    started = time.monotonic()
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
    try:
        async with asyncio.timeout(turn_timeout_s):
            async with http.stream(
                "POST", url, json=body, headers=headers, timeout=timeout
            ) as response:
                outcome.status_code = response.status_code
                if not response.is_success:
                    reason = _BY_STATUS.get(response.status_code, LLM_FAILED)
                    return outcome.fail(reason, f"HTTP {response.status_code}")
                kind = response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    return outcome.fail(LLM_FAILED, f"not an event stream ({kind or 'no type'})")
                await _read_events(response, outcome, interrupt_after_chars, started)
    except TimeoutError:
        outcome.fail(LLM_FAILED, f"no complete answer within {turn_timeout_s:g} s")
    except httpx.TimeoutException:
        outcome.fail(LLM_FAILED, f"timed out ({timeout_s:g} s without data)")
    except httpx.HTTPError as exc:
        outcome.fail(LLM_FAILED, f"request failed: {type(exc).__name__}")
    finally:
        outcome.elapsed_s = time.monotonic() - started
    if outcome.ended_reason is None and not outcome.done and not outcome.interrupted:
        outcome.fail(LLM_FAILED, "the stream ended without data: [DONE]")
    return outcome
