"""The WebSockets this ingress instance holds, by chat session."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected

SOCKET_GONE: tuple[type[Exception], ...] = (WebSocketDisconnect, WebSocketDisconnected)
"""What a send or receive raises once the browser has left or we closed the socket: an end,
not a bug. (`WebSocketDisconnected` is a `RuntimeError`, so never catch `RuntimeError` for
this: it also hides real bugs.)"""


class ChatConnection:
    """One browser socket. Sends are serialized: the reader and the inbox both write to it."""

    def __init__(self, websocket: WebSocket, session_id: str) -> None:
        self.websocket = websocket
        self.session_id = session_id
        self._send_lock = asyncio.Lock()
        self.drain_lock = asyncio.Lock()
        """Held while the session's outbox is written to this socket."""
        self.resync: asyncio.Task[None] | None = None
        """Background retry of the holder claim and outbox drain after a Redis error."""

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one JSON frame; raises one of `SOCKET_GONE` if the socket is gone."""
        async with self._send_lock:
            await self.websocket.send_json(frame)

    def stop_resync(self) -> None:
        """Cancel the background retry, if any (the socket is closing)."""
        if self.resync is not None:
            self.resync.cancel()


class ConnectionRegistry:
    """Live chat connections of this process. One per session: the newest replaces older ones."""

    def __init__(self) -> None:
        self._by_session: dict[str, ChatConnection] = {}

    def add(self, connection: ChatConnection) -> ChatConnection | None:
        """Register `connection`; returns the one it replaced, if any (to be closed)."""
        previous = self._by_session.get(connection.session_id)
        self._by_session[connection.session_id] = connection
        return previous

    def remove(self, connection: ChatConnection) -> bool:
        """Unregister `connection` if it is still the current one; True if it was."""
        if self._by_session.get(connection.session_id) is connection:
            del self._by_session[connection.session_id]
            return True
        return False

    def get(self, session_id: str) -> ChatConnection | None:
        return self._by_session.get(session_id)

    def is_current(self, connection: ChatConnection) -> bool:
        """True while `connection` is the session's registered socket."""
        return self._by_session.get(connection.session_id) is connection

    def session_ids(self) -> list[str]:
        return list(self._by_session)

    def all(self) -> list[ChatConnection]:
        return list(self._by_session.values())
