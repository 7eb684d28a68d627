"""Chat sessions that talk like the page under load, for resilience tests: outbox semantics
(resend the same id after `unavailable`), reply de-duplication by `reply_id`, and now and then
a reload (close the socket, open a new one)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import websockets

TURN_PAUSE_S = (0.1, 0.4)
RELOAD_EVERY = 3
"""Every this many turns a session closes its socket and opens a new one (a page reload)."""
RETRY_S = (0.2, 2.0)
"""The page's backoff after `unavailable` (shortened)."""


@dataclass
class Session:
    """One browser tab speaking the protocol like the page: outbox semantics, resend on
    `unavailable`, reply de-duplication by `reply_id`."""

    base_url: str
    token: str
    name: str
    acked: set[str] = field(default_factory=set)
    replies: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unavailable: int = 0
    connect_unavailable: int = 0
    deaths: list[str] = field(default_factory=list)
    _ws: Any = None
    _reader: asyncio.Task[None] | None = None
    _frames: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def open(self) -> None:
        url = self.base_url.replace("http://", "ws://") + f"/v1/chat/ws?token={self.token}"
        self._ws = await websockets.connect(url)
        self._reader = asyncio.create_task(self._read(self._ws))
        assert (await self._next(lambda f: f["type"] == "ready", 30))["type"] == "ready"

    async def close(self) -> None:
        ws, reader = self._ws, self._reader
        self._ws = self._reader = None
        if ws is not None:
            await ws.close()
        if reader is not None:
            await reader

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "reply":
                    self.replies[frame["in_reply_to"]].add(frame["reply_id"])
                elif frame["type"] == "error" and frame["code"] == "unavailable":
                    if "id" in frame:
                        self.unavailable += 1
                    else:
                        self.connect_unavailable += 1
                await self._frames.put(frame)
        except websockets.ConnectionClosed as closed:
            if ws is self._ws:  # not a close we started
                self.deaths.append(f"{self.name}: {closed.rcvd!r}")
        else:
            if ws is self._ws:
                self.deaths.append(f"{self.name}: server closed ({ws.close_code})")

    async def _next(self, match: Any, timeout_s: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                frame = await self._frames.get()
                if match(frame):
                    return frame

    async def turn(self, message_id: str) -> None:
        """Send until acked (resending the same id after `unavailable`), then await the reply."""
        delay = RETRY_S[0]
        while True:
            await self._ws.send(json.dumps({"type": "message", "id": message_id, "text": "hi"}))
            frame = await self._next(
                lambda f: f.get("id") == message_id and f["type"] in ("ack", "error"), 60
            )
            if frame["type"] == "ack":
                self.acked.add(message_id)
                break
            assert frame["code"] == "unavailable", frame
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_S[1])
        deadline = time.monotonic() + 90
        while message_id not in self.replies and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


async def talk(session: Session, stop: asyncio.Event) -> None:
    await session.open()
    turn = 0
    while not stop.is_set() and not session.deaths:
        turn += 1
        await session.turn(f"{session.name}-m{turn}")
        if turn % RELOAD_EVERY == 0:
            await session.close()
            await session.open()
        await asyncio.sleep(random.uniform(*TURN_PAUSE_S))
    await session.close()
