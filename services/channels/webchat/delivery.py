"""Reply delivery to the sockets this instance holds, and what happens when Redis is away.

A socket is *synced* once its holder lease is claimed and its outbox drained (in that order:
see the ordering argument in services/channels/webchat/store.py). When Redis fails either step
(down, restarting, or `BusyLoadingError` while it loads its data file) the socket stays open:
the client gets an `unavailable` error frame and a background task retries the sync with
backoff until it succeeds or the socket closes. Replies wait in the outbox meanwhile, so
nothing is lost, only late.

Claims and releases of one session are serialized on this instance: a page reload closes the
old socket while the new one connects, and the old socket's release (a compare-and-delete on
our instance id, which the new socket's claim writes too) must not land after the new claim.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from prometheus_client import Counter
from redis.exceptions import RedisError

from services.channels.webchat import frames
from services.channels.webchat.connections import (
    SOCKET_GONE,
    ChatConnection,
    ConnectionRegistry,
)
from services.channels.webchat.profile import NAME
from services.channels.webchat.store import ChatStore, PendingReply
from services.common.backoff import Backoff, BackoffCounter
from services.common.cancellation import raise_if_cancelling
from services.common.ops import OpsEmitter
from shared.contracts import DeliveryReceipt, DeliveryStatus, Lifecycle
from shared.logs import ThrottledLog, get_logger

log = get_logger("ingress.chat")
_sync_deferred = ThrottledLog(log, "ingress.chat.sync_deferred")

CHAT_REPLIES_SENT = Counter("switchboard_chat_replies_sent_total", "Replies written to sockets")
CHAT_SYNC_DEFERRED = Counter(
    "switchboard_chat_sync_deferred_total",
    "Holder claims or outbox drains postponed because Redis failed",
    ["error"],
)

RESYNC = Backoff(base_s=0.5, cap_s=5.0, jitter="equal")
"""Backoff of the background sync: quick enough that replies follow a Redis restart within
seconds, slow enough that a few thousand sockets do not hammer a Redis that is loading."""


def unavailable_frame(frame_id: str | None = None) -> dict[str, object]:
    """The error frame for "try again later"; the only code a client should retry."""
    message = "temporarily unavailable, retry later" if frame_id else "replies are delayed"
    return frames.error_frame("unavailable", message, frame_id)


class ReplyDelivery:
    """Claims sessions for this instance and writes their waiting replies to the sockets."""

    def __init__(
        self,
        *,
        store: ChatStore,
        ops: OpsEmitter,
        connections: ConnectionRegistry,
        instance_id: str,
    ) -> None:
        self.store = store
        self.ops = ops
        self.connections = connections
        self.instance_id = instance_id
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def sync(self, connection: ChatConnection) -> None:
        """Claim the session and drain its outbox; on a Redis error tell the client
        `unavailable` and keep retrying in the background (the socket stays usable)."""
        try:
            await self._claim_and_drain(connection)
        except RedisError as exc:
            self._defer(connection, exc)
            await connection.send(unavailable_frame())

    async def deliver_pending(self, session_id: str) -> None:
        """Write every waiting reply of `session_id` to its socket, if this instance holds it.

        Never raises for Redis: a failed drain is retried by the connection's background sync.
        """
        connection = self.connections.get(session_id)
        if connection is None:
            return
        try:
            await self._drain(connection)
        except RedisError as exc:
            self._defer(connection, exc)

    async def release(self, session_id: str) -> None:
        """Drop our holder lease at disconnect, unless a newer socket of the session connected
        here meanwhile. Best effort: if Redis is away the lease simply expires
        (`holder_ttl_s`), and egress keeps the replies in the outbox until then."""
        async with self._session_lock(session_id):
            if self.connections.get(session_id) is not None:
                return  # reconnected to this instance: the lease is the new socket's
            try:
                await self.store.release_holder(session_id, self.instance_id)
            except RedisError as exc:
                log.info("ingress.chat.release_skipped", error=type(exc).__name__)

    async def _claim_and_drain(self, connection: ChatConnection) -> None:
        async with self._session_lock(connection.session_id):
            await self.store.claim_holder(connection.session_id, self.instance_id)
        await self._drain(connection)

    @contextlib.asynccontextmanager
    async def _session_lock(self, session_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(session_id, (asyncio.Lock(), 0))
        self._locks[session_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[session_id]
            if users == 1:
                del self._locks[session_id]
            else:
                self._locks[session_id] = (lock, users - 1)

    async def _drain(self, connection: ChatConnection) -> None:
        # Read, send, then remove what was sent: if Redis goes away mid-drain the rest stays in
        # the outbox and is sent again later (the page skips a reply_id it already showed).
        # One drain per socket at a time, so the inbox and the background sync never both send.
        async with connection.drain_lock:
            pending = await self.store.pending(connection.session_id)
            sent: list[PendingReply] = []
            try:
                for reply in pending:
                    await connection.send(
                        frames.reply_frame(reply.reply_id, reply.in_reply_to, reply.text)
                    )
                    sent.append(reply)
            except Exception:  # noqa: S110  # the socket closed mid-drain: the rest stays queued
                pass
            finally:
                await self.store.acknowledge(connection.session_id, [r.reply_id for r in sent])
            for reply in sent:
                CHAT_REPLIES_SENT.inc()
                await self._report_delivered(reply)

    def _defer(self, connection: ChatConnection, exc: RedisError) -> None:
        CHAT_SYNC_DEFERRED.labels(type(exc).__name__).inc()
        if connection.resync is not None and not connection.resync.done():
            return  # already retrying
        # Every socket meets the same Redis outage: one line per window, not one per socket.
        _sync_deferred.warning(error=type(exc).__name__)
        connection.resync = asyncio.create_task(
            self._resync(connection), name=f"chat-resync-{connection.session_id}"
        )

    async def _resync(self, connection: ChatConnection) -> None:
        waits = BackoffCounter(RESYNC)
        while self.connections.is_current(connection):
            await asyncio.sleep(waits.failed())
            raise_if_cancelling()  # a cancel lost inside a Redis command (gh-86296)
            try:
                await self._claim_and_drain(connection)
            except RedisError:
                continue
            except SOCKET_GONE:
                return
            except Exception as exc:  # a background task has nobody to raise to
                log.error("ingress.chat.resync_failed", error=type(exc).__name__)
                return
            log.debug("ingress.chat.sync_recovered", session_id=connection.session_id)
            return

    async def _report_delivered(self, reply: PendingReply) -> None:
        conversation_id = reply.conversation_id
        await self.ops.emit(
            Lifecycle.DELIVERED,
            channel=NAME,
            conversation_id=conversation_id,
            reply_id=reply.reply_id,
        )
        await self.ops.receipt(
            DeliveryReceipt(
                reply_id=reply.reply_id,
                conversation_id=conversation_id,
                channel=NAME,
                status=DeliveryStatus.DELIVERED,
            )
        )
