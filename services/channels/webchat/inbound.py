"""The web chat input channel: session tokens, the WebSocket, and reply delivery to it.

Failure policy of the socket (docs/web-chat.md):
- a refused text frame gets an `error` frame and the socket stays open;
- a binary frame closes the socket with 1003 (unsupported data): the protocol is JSON text;
- Redis errors become an `unavailable` error frame, the socket stays open;
- anything else is a bug: logged by exception type only, the socket closed with 1011.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnected

from services.channels.sdk.publish import ChannelPublisher, PublishFailed
from services.channels.webchat import frames
from services.channels.webchat.connections import (
    SOCKET_GONE,
    ChatConnection,
    ConnectionRegistry,
)
from services.channels.webchat.delivery import ReplyDelivery, unavailable_frame
from services.channels.webchat.store import ChatStore
from services.channels.webchat.tokens import TokenSigner, new_session_id
from services.common.cancellation import raise_if_cancelling
from services.common.ops import OpsEmitter
from services.ingress.identity import IdentityResolver
from shared.contracts import Lifecycle
from shared.contracts.inbox import ChatDoorbell
from shared.logs import get_logger

log = get_logger("ingress.chat")

CHAT_FRAMES_REJECTED = Counter(
    "switchboard_chat_frames_rejected_total", "Chat frames refused", ["code"]
)
CHAT_SOCKETS_FAILED = Counter(
    "switchboard_chat_sockets_failed_total", "Chat sockets closed with 1011 by a bug", ["error"]
)

CLOSE_REPLACED = 4409
"""A newer connection of the same session took over (application range 4000-4999)."""
CLOSE_SHUTDOWN = 1001
CLOSE_UNSUPPORTED_DATA = 1003
"""RFC 6455: the endpoint received a type of data it cannot accept (a binary frame)."""
CLOSE_INTERNAL_ERROR = 1011


class WebChatChannel:
    """Everything web chat needs on the ingress side: the inbound adapter of the channel."""

    def __init__(
        self,
        *,
        signer: TokenSigner,
        store: ChatStore,
        publisher: ChannelPublisher,
        identity: IdentityResolver,
        ops: OpsEmitter,
        instance_id: str,
        max_text: int,
    ) -> None:
        self.signer = signer
        self.store = store
        self.publisher = publisher
        self.identity = identity
        self.ops = ops
        self.instance_id = instance_id
        self.max_text = max_text
        self.connections = ConnectionRegistry()
        self.delivery = ReplyDelivery(
            store=store, ops=ops, connections=self.connections, instance_id=instance_id
        )

    def router(self) -> APIRouter:
        """HTTP and WebSocket routes of the channel."""
        router = APIRouter(prefix="/v1/chat", tags=["chat"])
        router.add_api_route("/sessions", self.create_session, methods=["POST"], status_code=201)
        router.add_api_websocket_route("/ws", self.websocket)
        return router

    async def create_session(self) -> JSONResponse:
        """Start an anonymous chat session and return its signed token."""
        session_id = new_session_id()
        token, expires_at = self.signer.issue(session_id)
        body = {
            "session_id": session_id,
            "token": token,
            "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat(),
        }
        return JSONResponse(body, status_code=status.HTTP_201_CREATED)

    async def websocket(self, websocket: WebSocket) -> None:
        """One browser connection: refuse bad tokens, then read frames until it closes."""
        claims = self.signer.verify(websocket.query_params.get("token"))
        if claims is None:
            CHAT_FRAMES_REJECTED.labels("bad_token").inc()
            # Closing before accept makes the handshake fail with HTTP 403.
            await websocket.close(code=4401, reason="invalid or expired token")
            return
        try:
            await websocket.accept()
        except (WebSocketDisconnect, WebSocketDisconnected, OSError):
            return  # the browser left during the handshake
        connection = ChatConnection(websocket, claims.session_id)
        replaced = self.connections.add(connection)
        if replaced is not None:
            replaced.stop_resync()
            with contextlib.suppress(Exception):
                await replaced.websocket.close(code=CLOSE_REPLACED, reason="replaced")
        log.info("ingress.chat.connected", session_id=claims.session_id)
        try:
            await connection.send(frames.ready_frame(claims.session_id))
            await self.delivery.sync(connection)
            await self._read_frames(connection)
        except SOCKET_GONE:
            pass  # the browser left; pending replies stay in the outbox
        except Exception as exc:
            # A bug, not the client's fault: say so with 1011 rather than vanish without a close
            # frame. The type alone: a message or traceback could quote what the customer typed.
            CHAT_SOCKETS_FAILED.labels(type(exc).__name__).inc()
            log.error(
                "ingress.chat.socket_failed",
                session_id=claims.session_id,
                error=type(exc).__name__,
            )
            with contextlib.suppress(Exception):
                await websocket.close(code=CLOSE_INTERNAL_ERROR, reason="internal error")
        finally:
            connection.stop_resync()
            if self.connections.remove(connection):
                await self.delivery.release(claims.session_id)
            log.info("ingress.chat.disconnected", session_id=claims.session_id)

    async def _read_frames(self, connection: ChatConnection) -> None:
        """Dispatch on the ASGI message type, so a disconnect is never mistaken for an error."""
        websocket = connection.websocket
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                raw = frames.frame_text(message)
            except frames.FrameError as error:
                await self._refuse(connection, error)
                if error.code == "binary_frame":
                    await websocket.close(code=CLOSE_UNSUPPORTED_DATA, reason=error.message)
                    return
                continue
            await self._on_frame(connection, raw)

    async def _refuse(self, connection: ChatConnection, error: frames.FrameError) -> None:
        CHAT_FRAMES_REJECTED.labels(error.code).inc()
        await self.ops.emit(Lifecycle.REJECTED, channel=self.publisher.name, reason=error.code)
        if error.code != "binary_frame":  # answered by the close code instead
            await connection.send(frames.error_frame(error.code, error.message, error.frame_id))

    async def _on_frame(self, connection: ChatConnection, raw: str) -> None:
        try:
            frame = frames.parse_client_frame(raw, self.max_text)
        except frames.FrameError as error:
            await self._refuse(connection, error)
            return
        if isinstance(frame, frames.PingFrame):
            await connection.send(frames.pong_frame())
            return
        session_id = connection.session_id
        try:
            conversation_id = await self.identity.resolve(self.publisher.name, session_id)
        except RedisError as exc:
            # No ack: the page keeps the message and resends the same id after a backoff.
            CHAT_FRAMES_REJECTED.labels("unavailable").inc()
            # Debug: during an outage every frame of every socket lands here.
            log.debug("ingress.chat.identity_unavailable", error=type(exc).__name__)
            await connection.send(unavailable_frame(frame.id))
            return
        try:
            await self.publisher.publish(
                provider_message_id=f"{session_id}:{frame.id}",
                address=session_id,
                conversation_id=conversation_id,
                text=frame.text,
            )
        except PublishFailed:
            # No ack: the page keeps the message in its outbox and resends the same id.
            await connection.send(unavailable_frame(frame.id))
            return
        await connection.send(frames.ack_frame(frame.id))

    async def deliver_pending(self, session_id: str) -> None:
        """Write every waiting reply of `session_id` to its socket, if this instance holds it."""
        await self.delivery.deliver_pending(session_id)

    async def on_inbox_entry(self, entry: ChatDoorbell) -> None:
        """Egress stored a reply for a session this instance may hold: deliver it."""
        await self.delivery.deliver_pending(entry.session_id)

    async def run(self) -> None:
        """Keep holder leases of our sockets alive until cancelled."""
        await self.heartbeat(self.store.holder_ttl_s / 3)

    async def close(self) -> None:
        """Close every socket at shutdown; browsers reconnect to another instance."""
        await self.close_all()

    async def heartbeat(self, interval_s: float) -> None:
        """Keep holder leases of our sockets alive until cancelled, and deliver replies that
        wait in an outbox without a doorbell.

        A reply is rung once, when egress stores it. A ring can be missed: the holder's lease
        or the inbox entry lost in a Redis failover (replication is asynchronous), or egress
        reading the holder while it moved. The outbox still holds the reply, so each beat
        looks (one pipelined HLEN for all our sessions) and drains what waits there.
        """
        while True:
            await asyncio.sleep(interval_s)
            raise_if_cancelling()  # a cancel lost inside a Redis command (gh-86296)
            session_ids = self.connections.session_ids()
            try:
                await self.store.refresh_holders(session_ids, self.instance_id)
                waiting = await self.store.sessions_with_pending(session_ids)
            except Exception as exc:
                log.warning("ingress.chat.heartbeat_failed", error=type(exc).__name__)
                continue
            for session_id in waiting:
                await self.delivery.deliver_pending(session_id)

    async def close_all(self) -> None:
        """Close every socket at shutdown; browsers reconnect to another instance."""
        for connection in self.connections.all():
            connection.stop_resync()
            with contextlib.suppress(Exception):
                await connection.websocket.close(code=CLOSE_SHUTDOWN, reason="server shutdown")
