"""The fake OpenAI server with server-side timing: `python -m bench.harness.timed_fake`.

Same app as `switchboard fake openai` (`services.fakes.openai_server.create_app`), wrapped in
a small ASGI layer that times each chat completion from its first byte in to its last byte
out, keyed by the request's last user message. `GET /_bench/timings` returns them. Benchmark
1 uses it to subtract only what the model server itself spent, so the brain's model-client
CPU (openai SDK, HTTP) counts as orchestration overhead in that variant.

`GET /_bench/requests` returns every request as `{"user", "start", "end", "first_token"}` in
`time.monotonic()` seconds. `first_token` is when the first chunk with content was handed to
the server (a streamed request: the model's time to first token is `first_token - start`);
None for a request that is not streamed or streamed no content. `CLOCK_MONOTONIC` is one
clock for every process of the machine, so the voice and VAPI benchmarks line these instants
up with their own (a transcript posted, a `say` at the fake VoIPBin, the first SSE chunk
read) to split a turn into before the model, the model, and after it.
`POST /_fake/config {"latency_ms": ...}` changes the latency at runtime, as for the fake.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import uvicorn
from fastapi.responses import JSONResponse

from services.fakes.openai_server import FakeModelConfig, FakeModelState, create_app

Scope = dict[str, Any]
Message = dict[str, Any]
REQUESTS_PATH = "/_bench/requests"


class ServerTiming:
    """ASGI middleware: {last user message: milliseconds} of chat completion requests, and
    `{"user", "start", "end", "first_token"}` (monotonic seconds) of each."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.timings: dict[str, float] = {}
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        started_monotonic = time.monotonic()
        body = bytearray()
        first_token: float | None = None

        async def receive_and_keep() -> Message:
            message: Message = await receive()
            body.extend(message.get("body", b""))
            return message

        async def send_and_time(message: Message) -> None:
            nonlocal first_token
            if message["type"] != "http.response.body":
                await send(message)
                return
            # Looked at before sending, timed after it: the instant the bytes left the model.
            content = first_token is None and has_content(message.get("body", b""))
            await send(message)
            if content:
                first_token = time.monotonic()
            if not message.get("more_body"):
                user = last_user(bytes(body))
                self.timings[user] = (time.perf_counter() - started) * 1000
                self.requests.append(
                    {
                        "user": user,
                        "start": started_monotonic,
                        "end": time.monotonic(),
                        "first_token": first_token,
                    }
                )

        await self.app(scope, receive_and_keep, send_and_time)


def last_user(body: bytes) -> str:
    """The content of the last `user` message of a chat completion request body."""
    try:
        messages = json.loads(body).get("messages", [])
    except ValueError:
        return ""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return str(users[-1]) if users else ""


def has_content(chunk: bytes) -> bool:
    """Whether a piece of an event stream carries a `chat.completion.chunk` with non-empty
    `delta.content` (the fake's first chunk is the role with empty content)."""
    for line in chunk.split(b"\n"):
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        try:
            choices = json.loads(line[6:]).get("choices") or []
        except (ValueError, AttributeError):
            continue
        if any((c.get("delta") or {}).get("content") for c in choices if isinstance(c, dict)):
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    app = create_app(
        FakeModelState(FakeModelConfig(latency_ms=args.latency_ms, api_key=args.api_key))
    )
    timed = ServerTiming(app)

    @app.get("/_bench/timings")
    async def timings() -> JSONResponse:
        return JSONResponse(timed.timings)

    @app.get(REQUESTS_PATH)
    async def requests() -> JSONResponse:
        return JSONResponse(timed.requests)

    uvicorn.run(timed, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
