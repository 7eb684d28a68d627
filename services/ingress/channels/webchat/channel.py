"""The web chat input channel: session tokens, the WebSocket, and reply delivery to it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from services.common.chat_store import ChatStore, PendingReply
from services.common.ops import OpsEmitter
from services.ingress.channels.webchat import frames
from services.ingress.channels.webchat.connections import ChatConnection, ConnectionRegistry
from services.ingress.channels.webchat.tokens import TokenSigner, new_session_id
from services.ingress.identity import IdentityResolver
from services.ingress.publisher import InboundPublisher, PublishFailed
from shared.contracts import Channel, DeliveryReceipt, DeliveryStatus, InboundMessage, Lifecycle
from shared.logs import get_logger
from shared.tracing import new_trace

log = get_logger("ingress.chat")

CHAT_FRAMES_REJECTED = Counter(
    "switchboard_chat_frames_rejected_total", "Chat frames refused", ["code"]
)
CHAT_REPLIES_SENT = Counter("switchboard_chat_replies_sent_total", "Replies written to sockets")

# Close codes in the 4000-4999 application range.
CLOSE_REPLACED = 4409
CLOSE_SHUTDOWN = 1001


class WebChatChannel:
    """Everything web chat needs on the ingress side."""

    name = Channel.CHAT

    def __init__(
        self,
        *,
        signer: TokenSigner,
        store: ChatStore,
        publisher: InboundPublisher,
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
        await websocket.accept()
        connection = ChatConnection(websocket, claims.session_id)
        replaced = self.connections.add(connection)
        if replaced is not None:
            with contextlib.suppress(Exception):
                await replaced.websocket.close(code=CLOSE_REPLACED, reason="replaced")
        await self.store.claim_holder(claims.session_id, self.instance_id)
        log.info("ingress.chat.connected", session_id=claims.session_id)
        try:
            await connection.send(frames.ready_frame(claims.session_id))
            await self.deliver_pending(claims.session_id)
            while True:
                raw = await websocket.receive_text()
                await self._on_frame(connection, raw)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the browser left; pending replies stay in the outbox
        finally:
            if self.connections.remove(connection):
                with contextlib.suppress(Exception):
                    await self.store.release_holder(claims.session_id, self.instance_id)
            log.info("ingress.chat.disconnected", session_id=claims.session_id)

    async def _on_frame(self, connection: ChatConnection, raw: str) -> None:
        try:
            frame = frames.parse_client_frame(raw, self.max_text)
        except frames.FrameError as error:
            CHAT_FRAMES_REJECTED.labels(error.code).inc()
            await self.ops.emit(Lifecycle.REJECTED, channel=Channel.CHAT, reason=error.code)
            await connection.send(frames.error_frame(error.code, error.message, error.frame_id))
            return
        if isinstance(frame, frames.PingFrame):
            await connection.send(frames.pong_frame())
            return
        session_id = connection.session_id
        message = InboundMessage(
            channel=Channel.CHAT,
            provider_message_id=f"{session_id}:{frame.id}",
            address=session_id,
            conversation_id=await self.identity.resolve(Channel.CHAT, session_id),
            text=frame.text,
            trace=new_trace(),
        )
        await self.ops.emit(
            Lifecycle.RECEIVED,
            channel=Channel.CHAT,
            conversation_id=message.conversation_id,
            message_id=message.provider_message_id,
            traceparent=message.trace.traceparent if message.trace else None,
        )
        try:
            await self.publisher.publish(message)
        except PublishFailed:
            # No ack: the page keeps the message in its outbox and resends the same id.
            await connection.send(
                frames.error_frame(
                    "unavailable", "could not accept the message, retrying", frame.id
                )
            )
            return
        await connection.send(frames.ack_frame(frame.id))

    async def deliver_pending(self, session_id: str) -> None:
        """Write every waiting reply of `session_id` to its socket, if this instance holds it."""
        connection = self.connections.get(session_id)
        if connection is None:
            return
        pending = await self.store.take_pending(session_id)
        for index, reply in enumerate(pending):
            try:
                await connection.send(
                    frames.reply_frame(reply.reply_id, reply.in_reply_to, reply.text)
                )
            except Exception:
                await self.store.restore(session_id, pending[index:])
                return
            CHAT_REPLIES_SENT.inc()
            await self._report_delivered(reply)

    async def _report_delivered(self, reply: PendingReply) -> None:
        conversation_id = reply.conversation_id
        await self.ops.emit(
            Lifecycle.DELIVERED,
            channel=Channel.CHAT,
            conversation_id=conversation_id,
            reply_id=reply.reply_id,
        )
        await self.ops.receipt(
            DeliveryReceipt(
                reply_id=reply.reply_id,
                conversation_id=conversation_id,
                channel=Channel.CHAT,
                status=DeliveryStatus.DELIVERED,
            )
        )

    async def on_inbox_entry(self, fields: dict[str, str]) -> None:
        """Inbox handler for `kind=chat`: egress stored a reply for a session we may hold."""
        await self.deliver_pending(fields["session_id"])

    async def heartbeat(self, interval_s: float) -> None:
        """Keep holder leases of our sockets alive until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.store.refresh_holders(self.connections.session_ids(), self.instance_id)
            except Exception as exc:
                log.warning("ingress.chat.heartbeat_failed", error=type(exc).__name__)

    async def close_all(self) -> None:
        """Close every socket at shutdown; browsers reconnect to another instance."""
        for connection in self.connections.all():
            with contextlib.suppress(Exception):
                await connection.websocket.close(code=CLOSE_SHUTDOWN, reason="server shutdown")
