"""A fake OpenAI Chat Completions server for tests and local runs, with no network access.

It is a real HTTP server that speaks enough of the OpenAI wire format for the official
``openai`` SDK to work against it unchanged:

* ``POST /v1/chat/completions``: plain ``chat.completion`` objects, or with ``stream: true``
  server-sent ``chat.completion.chunk`` events ending in ``data: [DONE]``.
* ``GET /v1/models``: the configured model ids.
* ``GET /_fake/requests``, ``POST /_fake/reset``, ``POST /_fake/config``: controls for tests.

Behaviour is set by :class:`FakeModelConfig`, at construction or at runtime via
``POST /_fake/config`` / :meth:`FakeOpenAIServer.configure`:

* ``api_key``: if set, requests must send ``Authorization: Bearer <api_key>`` or get a 401.
* ``latency_ms``: wait before answering (for streams, before the headers and first chunk);
  ``latencies_ms``: per-request latencies, used one per request in order, then
  ``latency_ms`` again; ``chunk_delay_ms``: wait between stream chunks.
* ``fail_next`` / ``fail_status``: the next N requests fail with that status, in OpenAI's error
  envelope. Failures carry ``retry-after-ms: <retry_after_ms>`` and the same in whole seconds
  as ``retry-after`` (default 1 ms, so retries are fast; ``None`` sends neither).
  ``retry_after``: when set, 429 and 503 failures carry exactly ``Retry-After: <retry_after>``
  (seconds or an HTTP date) and no ``retry-after-ms``. ``rate_limit_per_second``: more
  requests than that within one second get a 429.
* ``replies``: scripted replies, used in order; then ``reply_template`` with the placeholders
  ``{last_user}``, ``{n_messages}`` and ``{model}``.
* ``hang``: accept requests and never answer until reset, ``hang`` is turned off, the client
  disconnects, or the server stops. ``hang_next``: only the next N requests hang (released
  the same ways, except by turning ``hang`` off). Other requests are not blocked.
* ``stream_fail_next`` / ``stream_fail_after``: the next N streamed answers send
  ``stream_fail_after`` content chunks, then an in-band error event (``data: {"error": ...}``,
  as OpenAI does when a stream breaks server-side) and end without ``[DONE]``.

Checks run in this order: auth, rate limit, ``fail_next``, latency, hang, reply (then, for
streams, ``stream_fail_next``). Every well-formed completion request is recorded, including
those that fail.

Run it by hand: ``python -m services.fakes.openai_server --host 127.0.0.1 --port 8090``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from services.fakes.threaded import ThreadedServer


class FakeModelConfig(BaseModel):
    """Behaviour switches of the fake model; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default_factory=lambda: ["fake-model"], min_length=1)
    api_key: str | None = None
    latency_ms: int = Field(default=0, ge=0)
    chunk_delay_ms: int = Field(default=0, ge=0)
    fail_next: int = Field(default=0, ge=0)
    fail_status: int = Field(default=500, ge=400, le=599)
    retry_after_ms: int | None = Field(default=1, ge=0)
    retry_after: str | None = None
    latencies_ms: list[int] = Field(default_factory=list)
    hang_next: int = Field(default=0, ge=0)
    stream_fail_next: int = Field(default=0, ge=0)
    stream_fail_after: int = Field(default=0, ge=0)
    rate_limit_per_second: int | None = Field(default=None, ge=0)
    reply_template: str = "You said: {last_user}"
    replies: list[str] = Field(default_factory=list)
    hang: bool = False


class FakeModelState:
    """Config and recorded requests shared by the app and the tests (thread-safe)."""

    def __init__(self, config: FakeModelConfig | None = None) -> None:
        self.defaults = (config or FakeModelConfig()).model_copy(deep=True)
        self.config = self.defaults.model_copy(deep=True)
        self.requests: list[dict[str, Any]] = []
        self.generation = 0  # bumped to release hung requests
        self._recent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def configure(self, **fields: Any) -> FakeModelConfig:
        """Update some config fields (validated) and return the new config."""
        with self._lock:
            merged = {**self.config.model_dump(), **fields}
            self.config = FakeModelConfig.model_validate(merged)
            return self.config

    def reset(self) -> None:
        """Forget recorded requests, restore the construction-time config, release hangs."""
        with self._lock:
            self.config = self.defaults.model_copy(deep=True)
            self.requests.clear()
            self._recent.clear()
            self.generation += 1

    def release_hung(self) -> None:
        """Let requests currently held by ``hang`` answer."""
        with self._lock:
            self.generation += 1

    def record(self, body: dict[str, Any]) -> None:
        """Remember a completion request body."""
        with self._lock:
            self.requests.append(body)

    def take_failure(self) -> int | None:
        """Return the status this request must fail with, if any (rate limit, then fail_next)."""
        with self._lock:
            now = time.monotonic()
            self._recent.append(now)
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            limit = self.config.rate_limit_per_second
            if limit is not None and len(self._recent) > limit:
                return 429
            if self.config.fail_next > 0:
                self.config.fail_next -= 1
                return self.config.fail_status
            return None

    def take_latency(self) -> float:
        """Seconds this request waits: the next scripted latency, else ``latency_ms``."""
        with self._lock:
            if self.config.latencies_ms:
                return self.config.latencies_ms.pop(0) / 1000
            return self.config.latency_ms / 1000

    def take_hang(self) -> bool:
        """Whether this request is one of the ``hang_next`` to hold."""
        with self._lock:
            if self.config.hang_next > 0:
                self.config.hang_next -= 1
                return True
            return False

    def take_stream_failure(self) -> int | None:
        """Content chunks to send before breaking this stream, if it must break."""
        with self._lock:
            if self.config.stream_fail_next > 0:
                self.config.stream_fail_next -= 1
                return self.config.stream_fail_after
            return None

    def next_reply(self, messages: list[dict[str, Any]], model: str) -> str:
        """The next scripted reply, or the template filled in from the request."""
        with self._lock:
            if self.config.replies:
                return self.config.replies.pop(0)
            template = self.config.reply_template
        users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
        return (
            template.replace("{last_user}", users[-1] if users else "")
            .replace("{n_messages}", str(len(messages)))
            .replace("{model}", model)
        )


def _text(content: Any) -> str:
    """Text of a message content: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A response in OpenAI's error envelope."""
    error = {"message": message, "type": type_, "param": param, "code": code}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _failure(status: int, config: FakeModelConfig) -> JSONResponse:
    """An injected failure (429, 5xx or other 4xx) with the configured retry hints."""
    headers: dict[str, str] = {}
    if config.retry_after is not None and status in (429, 503):
        headers["retry-after"] = config.retry_after
    elif config.retry_after_ms is not None:
        headers["retry-after-ms"] = str(config.retry_after_ms)
        headers["retry-after"] = str(config.retry_after_ms // 1000)
    code = "rate_limit_exceeded" if status == 429 else None
    type_ = code or ("server_error" if status >= 500 else "invalid_request_error")
    return _error(status, f"Injected failure {status} (fake).", type_, code, headers=headers)


async def _wait_while_hung(state: FakeModelState, request: Request, held: bool) -> bool:
    """Hold the request while ``hang`` is on (or for good if ``held``, until released).

    Returns False if the client went away meanwhile (or during the latency before), so a
    request the client gave up on never consumes a scripted reply meant for a later one.
    """
    generation = state.generation
    while (held or state.config.hang) and state.generation == generation:
        if await request.is_disconnected():
            return False
        await asyncio.sleep(0.02)
    return not await request.is_disconnected()


def create_app(state: FakeModelState | None = None) -> FastAPI:
    """Build the fake OpenAI app around ``state`` (a fresh default state if None)."""
    fake = state or FakeModelState()
    app = FastAPI(title="Fake OpenAI", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            message = "Expected a JSON object with a 'messages' list."
            return _error(400, message, "invalid_request_error", param="messages")
        fake.record(body)
        config = fake.config
        if config.api_key is not None and (
            request.headers.get("authorization") != f"Bearer {config.api_key}"
        ):
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        failure = fake.take_failure()
        if failure is not None:
            return _failure(failure, config)
        if latency := fake.take_latency():
            await asyncio.sleep(latency)
        if not await _wait_while_hung(fake, request, held=fake.take_hang()):
            return Response(status_code=499)

        return _answer(fake, body)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "switchboard-fake"}
            for m in fake.config.models
        ]
        return {"object": "list", "data": data}

    @app.get("/_fake/requests")
    async def recorded_requests() -> list[dict[str, Any]]:
        return list(fake.requests)

    @app.post("/_fake/reset")
    async def reset() -> dict[str, Any]:
        fake.reset()
        return fake.config.model_dump()

    @app.post("/_fake/config")
    async def configure(request: Request) -> Response:
        try:
            return JSONResponse(fake.configure(**await request.json()).model_dump())
        except (ValueError, TypeError) as exc:  # bad JSON, non-object, or validation error
            return _error(422, str(exc), "invalid_request_error")

    return app


def _answer(state: FakeModelState, body: dict[str, Any]) -> Response:
    """The completion (JSON or a stream) for a request that passed all checks."""
    model = str(body.get("model") or state.config.models[0])
    pieces = re.findall(r"\s*\S+|\s+$", state.next_reply(body["messages"], model))
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if isinstance(limit, int) and 0 < limit < len(pieces):
        pieces, finish = pieces[:limit], "length"
    prompt = sum(len(_text(m.get("content")).split()) for m in body["messages"])
    usage = {"prompt_tokens": prompt, "completion_tokens": len(pieces)}
    usage["total_tokens"] = prompt + len(pieces)
    base = {"id": f"chatcmpl-{secrets.token_hex(12)}", "created": int(time.time())}
    base |= {"model": model, "system_fingerprint": "fp_fake"}
    if body.get("stream"):
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        delay = state.config.chunk_delay_ms / 1000
        break_after = state.take_stream_failure()
        events = _stream(base, pieces, finish, usage if with_usage else None, delay, break_after)
        return StreamingResponse(events, media_type="text/event-stream")
    message = {"role": "assistant", "content": "".join(pieces), "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})


async def _stream(
    base: dict[str, Any],
    pieces: list[str],
    finish: str,
    usage: dict[str, int] | None,
    delay: float,
    break_after: int | None = None,
) -> AsyncIterator[str]:
    """Server-sent events for a streamed completion (broken off after ``break_after`` pieces)."""

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    def choice(delta: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    yield event(choice({"role": "assistant", "content": ""}))
    for sent, piece in enumerate(pieces):
        if break_after is not None and sent >= break_after:
            break
        if delay:
            await asyncio.sleep(delay)
        yield event(choice({"content": piece}))
    if break_after is not None:
        error = {"message": "Injected stream failure (fake).", "type": "server_error"}
        yield f"data: {json.dumps({'error': error | {'param': None, 'code': None}})}\n\n"
        return
    yield event(choice({}, finish))
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"


class FakeOpenAIServer(ThreadedServer):
    """Runs the fake in a background thread: ``with``/``async with``, or ``start()``/``stop()``."""

    label = "fake OpenAI server"

    def __init__(
        self, config: FakeModelConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.state = FakeModelState(config)

    def app(self) -> FastAPI:
        """The fake's ASGI app, bound to this server's state."""
        return create_app(self.state)

    def before_stop(self) -> None:
        """Release hung requests so the server can stop."""
        self.state.release_hung()

    @property
    def base_url(self) -> str:
        """The URL to give the SDK, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def configure(self, **fields: Any) -> FakeModelConfig:
        """Change behaviour switches; see :class:`FakeModelConfig`."""
        return self.state.configure(**fields)


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the fake until interrupted."""
    parser = argparse.ArgumentParser(description="Fake OpenAI Chat Completions server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.add_argument("--model", action="append", help="model id to list (repeatable)")
    args = parser.parse_args(argv)
    config = FakeModelConfig(latency_ms=args.latency_ms, api_key=args.api_key)
    if args.model:
        config.models = args.model
    app = create_app(FakeModelState(config))
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
