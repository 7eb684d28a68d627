"""Web chat delivery: store the reply in the session's outbox, ring the holder's inbox.

The browser's socket lives on some ingress instance. The reply is first stored (once per
`reply_id`), then the instance holding the session, if any, is told to drain the outbox. A
session with no live socket keeps the reply until the browser reconnects.
"""

from __future__ import annotations

from services.channels.sdk.plugin import NoBackgroundWork
from services.channels.webchat.profile import NAME
from services.channels.webchat.store import ChatStore, PendingReply, PutResult, now_ms
from services.common.inbox import InboxWriter
from services.common.ops import OpsEmitter
from shared.contracts import Lifecycle, Reply
from shared.contracts.inbox import ChatDoorbell


class WebChatOutput(NoBackgroundWork):
    """The outbound adapter of web chat: outbox first, then the holder's doorbell."""

    channel = NAME

    def __init__(self, store: ChatStore, inbox: InboxWriter, ops: OpsEmitter) -> None:
        self._store = store
        self._inbox = inbox
        self._ops = ops

    async def deliver(self, reply: Reply) -> None:
        session_id = reply.address
        # Chat provider ids are "<session>:<client message id>"; the page knows the latter.
        client_message_id = reply.in_reply_to.removeprefix(f"{session_id}:")
        result = await self._store.put_reply(
            session_id,
            PendingReply(
                reply_id=reply.reply_id,
                conversation_id=reply.conversation_id,
                in_reply_to=client_message_id,
                text=reply.text,
                created_ms=now_ms(),
            ),
            fence=reply.fence,
        )
        ids = {
            "channel": NAME,
            "conversation_id": reply.conversation_id,
            "reply_id": reply.reply_id,
        }
        if result is PutResult.DONE:
            await self._ops.emit(Lifecycle.DEDUPED, **ids)
            return
        if result is PutResult.STALE:
            await self._ops.emit(Lifecycle.FENCED, reason="stale_fencing_token", **ids)
            return
        holder = await self._store.holder(session_id)
        if holder is None:
            await self._ops.emit(Lifecycle.QUEUED, reason="no_live_socket", **ids)
            return
        await self._inbox.post(holder, ChatDoorbell(session_id=session_id, reply_id=reply.reply_id))
        await self._ops.emit(Lifecycle.QUEUED, attributes={"holder": holder}, **ids)
