"""A stand-in for Switchboard's VAPI routes, for tests of the fake VAPI and its tools: it
answers `assistant-request` and streams custom-LLM answers, valid or broken on purpose, and
records every request (headers, raw body, JSON)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.fakes.threaded import ThreadedServer

ANSWER = ["Sure, ", "<flush />we ship ", "to Canada ", "in five days."]
"""The default answer's chunks: heard as "Sure, we ship to Canada in five days."."""


def chunk(content: str | None = None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "switchboard",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


class Receiver(ThreadedServer):
    """Switchboard's part, as small as possible: the server URL and the custom LLM.

    `answer(body)` is the assistant-request answer (after `answer_delay_s`); `stream(body)`
    the SSE events of a custom-LLM answer (`status`, `delay_s` before the headers).
    """

    label = "tiny VAPI receiver"

    def __init__(self, events_path: str = "/events", llm_base: str = "/llm") -> None:
        super().__init__("127.0.0.1", 0)
        self.events_path, self.llm_base = events_path, llm_base
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.llm: list[dict[str, Any]] = []
        self.answer_delay_s = 0.0
        self.answer: Callable[[dict[str, Any]], Any] = lambda body: {"assistant": self.assistant()}
        self.status = 200
        self.delay_s = 0.0
        self.gap_s = 0.0
        self.stream: Callable[[dict[str, Any]], list[str]] = lambda body: [
            *(chunk(part) for part in ANSWER),
            chunk(finish="stop"),
            "data: [DONE]\n\n",
        ]
        self.on_first_chunk: Callable[[dict[str, Any]], Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def assistant(self, **fields: Any) -> dict[str, Any]:
        url = f"{self.url}{self.llm_base}"
        model = {"provider": "custom-llm", "url": url, "model": "switchboard"}
        return {"firstMessage": "Hi, this is Switchboard.", "model": model} | fields

    def types(self) -> list[str]:
        with self.lock:
            return [e["json"]["message"]["type"] for e in self.events]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["json"]["message"]["type"] == kind]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post(self.events_path)
        async def events(request: Request) -> Response:
            raw = await request.body()
            body = json.loads(raw)
            with self.lock:
                self.events.append({"headers": dict(request.headers), "raw": raw, "json": body})
            if body["message"]["type"] == "assistant-request":
                await asyncio.sleep(self.answer_delay_s)
                return JSONResponse(self.answer(body))
            return JSONResponse({})

        @app.post(self.llm_base + "/chat/completions")
        async def llm(request: Request) -> Response:
            body = await request.json()
            with self.lock:
                self.llm.append({"headers": dict(request.headers), "json": body})
            await asyncio.sleep(self.delay_s)
            if self.status != 200:
                return JSONResponse({"error": "boom"}, status_code=self.status)
            events = self.stream(body)

            async def gen() -> AsyncIterator[str]:
                for index, event in enumerate(events):
                    yield event
                    if index == 0 and self.on_first_chunk is not None:
                        await self.on_first_chunk(body)
                    await asyncio.sleep(self.gap_s)

            return StreamingResponse(gen(), media_type="text/event-stream")

        return app
