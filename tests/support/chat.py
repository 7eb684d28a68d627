"""A minimal web chat client speaking the WebSocket protocol, for tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets


async def new_session(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{base_url}/v1/chat/sessions")
    assert response.status_code == 201, response.text
    return dict(response.json())


class ChatClient:
    """One browser tab: connect, send, and wait for frames of a given type."""

    def __init__(self, base_url: str, token: str) -> None:
        self.url = base_url.replace("http://", "ws://") + f"/v1/chat/ws?token={token}"
        self.ws: Any = None
        self.frames: list[dict[str, Any]] = []

    async def __aenter__(self) -> ChatClient:
        self.ws = await websockets.connect(self.url)
        ready = await self.next_frame("ready")
        assert ready["session_id"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def send_raw(self, raw: str) -> None:
        await self.ws.send(raw)

    async def send(self, message_id: str, text: str) -> None:
        await self.send_raw(json.dumps({"type": "message", "id": message_id, "text": text}))

    async def next_frame(
        self, frame_type: str, timeout_s: float = 30.0, **match: Any
    ) -> dict[str, Any]:
        """The next frame of `frame_type` whose fields equal `match` (earlier ones are kept)."""
        for frame in self.frames:
            if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
                self.frames.remove(frame)
                return frame
        async with asyncio.timeout(timeout_s):
            while True:
                frame = json.loads(await self.ws.recv())
                if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
                    return frame
                self.frames.append(frame)

    async def ask(self, message_id: str, text: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Send a message, expect its ack, return its reply frame."""
        await self.send(message_id, text)
        await self.next_frame("ack", id=message_id)
        return await self.next_frame("reply", timeout_s, in_reply_to=message_id)
