"""The fake model for the voice benchmark: `python -m bench.harness.voice_model`.

The same app as `switchboard fake openai` (`services.fakes.openai_server.create_app`, so
`POST /_fake/config {"latency_ms": ...}` changes its latency at runtime), wrapped in an ASGI
layer that records, for each chat completion, the request's last user message and
`time.monotonic()` at its first byte in and its last byte out. `GET /_bench/requests`
returns them. `CLOCK_MONOTONIC` is one clock for every process of the machine, so these
instants line up with the bench's own (a transcript posted, a `say` at the fake VoIPBin)
and split a voice turn into the part before the model, the model, and the part after it.
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
COMPLETIONS_PATH = "/v1/chat/completions"
REQUESTS_PATH = "/_bench/requests"


class MonotonicTiming:
    """ASGI middleware: `{"user", "start", "end"}` of every chat completion request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != COMPLETIONS_PATH:
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        body = bytearray()

        async def receive_and_keep() -> Message:
            message: Message = await receive()
            body.extend(message.get("body", b""))
            return message

        async def send_and_time(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                entry = {"user": last_user(bytes(body)), "start": started, "end": time.monotonic()}
                self.requests.append(entry)

        await self.app(scope, receive_and_keep, send_and_time)


def last_user(body: bytes) -> str:
    """The content of the last `user` message of a chat completion request body."""
    try:
        messages = json.loads(body).get("messages", [])
    except ValueError:
        return ""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return str(users[-1]) if users else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    app = create_app(
        FakeModelState(FakeModelConfig(latency_ms=args.latency_ms, api_key=args.api_key))
    )
    timed = MonotonicTiming(app)

    @app.get(REQUESTS_PATH)
    async def requests() -> JSONResponse:
        return JSONResponse(timed.requests)

    uvicorn.run(timed, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
