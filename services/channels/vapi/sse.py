"""The custom-LLM answer on the wire: OpenAI `chat.completion.chunk` server-sent events.

providers.md §3.5, with its corrections: every `data:` line carries a `choices` array (VAPI
iterates it and fails the turn on a line without one), and the stream always ends with
`data: [DONE]`. A request with `"stream": false` gets one `chat.completion` object instead.

`EventStream` is the response that writes the chunks: it watches the connection while the
answer is awaited (the client hanging up is VAPI's barge-in) and always drains its chunk
source, so the source's own clean-up (releasing the stream, publishing the barge-in) runs
whether or not anyone still listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shared.logs import get_logger

DONE = b"data: [DONE]\n\n"
"""The last line of every stream."""

log = get_logger("ingress.vapi.llm")


@dataclass(frozen=True)
class Piece:
    """Text to speak; the filler is left out of a non-streamed answer."""

    text: str
    filler: bool = False


async def answer_events(chunks: Chunks, pieces: AsyncIterator[Piece]) -> AsyncIterator[bytes]:
    """The answer as chunks: role, content..., finish, `[DONE]`; always all of them."""
    yield chunks.role()
    try:
        async for piece in pieces:
            yield chunks.content(piece.text)
    except Exception as exc:  # the answer handles its errors; this is the last guard
        log.warning("ingress.vapi.llm.stream_failed", error=type(exc).__name__)
    yield chunks.finish()
    yield DONE


@dataclass(frozen=True)
class Chunks:
    """Formats the chunks of one answer: same `id`, `created` and `model` on each."""

    completion_id: str
    model: str
    created: int

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """One `data:` line: a `chat.completion.chunk` with exactly one choice."""
        payload = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    def role(self) -> bytes:
        """The opening chunk: the assistant starts speaking."""
        return self.chunk({"role": "assistant"})

    def content(self, text: str) -> bytes:
        """Some text to speak."""
        return self.chunk({"content": text})

    def finish(self) -> bytes:
        """The answer is complete (`finish_reason: stop`)."""
        return self.chunk({}, "stop")

    def completion(self, text: str) -> dict[str, Any]:
        """The whole answer as one `chat.completion` (a request with `stream: false`)."""
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }


class EventStream(Response):
    """`text/event-stream` from an async iterator of ready-made `data:` lines.

    Unlike Starlette's `StreamingResponse`, it notices the client leaving while nothing is
    being written (`on_disconnect` is called at once), and it never abandons the iterator:
    after a disconnect the remaining lines are read and dropped, so the iterator finishes
    its work in order instead of being cancelled at an arbitrary await.
    """

    media_type = "text/event-stream"

    def __init__(
        self, lines: AsyncIterator[bytes], on_disconnect: Callable[[], None] | None = None
    ) -> None:
        self._lines = lines
        self._on_disconnect = on_disconnect or (lambda: None)
        self.status_code = 200
        self.background = None
        # No proxy buffering: VAPI's text-to-speech starts on the first sentence.
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = False

        def disconnected() -> None:
            nonlocal gone
            if not gone:
                gone = True
                self._on_disconnect()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected()
                    return

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for line in self._lines:
                if gone:
                    continue
                try:
                    await send({"type": "http.response.body", "body": line, "more_body": True})
                except OSError:  # ASGI 2.4: writing to a closed connection
                    disconnected()
            if not gone:
                with contextlib.suppress(OSError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            disconnected()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            # Cancelled mid-answer (shutdown): let the source's clean-up run all the same.
            aclose = getattr(self._lines, "aclose", None)
            if aclose is not None:
                await aclose()
