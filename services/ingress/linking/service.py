"""The linking flow: start (send a code to the phone) and verify (prove it, then link).

Framework-free: the HTTP layer (`routes.py`) maps the errors below to status codes.
Order on success: publish `identity_linked` (acknowledged) *before* writing the mapping, so
every chat message resolved to the phone's conversation lands behind the merge on the same
partition, and a failed publish leaves nothing half done (the client retries the same code).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from services.common.ops import OpsEmitter
from services.ingress.identity import IdentityResolver, InvalidPhoneNumber, normalize_phone
from services.ingress.linking import codes
from services.ingress.linking.store import LinkStore
from shared.contracts import Channel, InboundMessage, Lifecycle, MessageKind, Reply
from shared.logs import get_logger
from shared.tracing import new_trace

log = get_logger("ingress.link")

ReplySink = Callable[[Reply], Awaitable[None]]
"""Publishes a reply and returns once Kafka acknowledged it (else `PublishFailed`)."""


class InboundSink(Protocol):
    """Publishes an inbound event and returns once Kafka acknowledged it."""

    async def publish(self, message: InboundMessage) -> None: ...


class LinkError(Exception):
    """A link request refused; `code` is machine-readable, the message is for people."""

    code = "link_error"


class BadCodeFormat(LinkError):
    code = "bad_code_format"


class AlreadyLinked(LinkError):
    code = "already_linked"

    def __init__(self, conversation_id: str) -> None:
        super().__init__("this chat session is already linked to a phone number")
        self.conversation_id = conversation_id


class RateLimited(LinkError):
    code = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many verification codes requested; try again later")
        self.retry_after_s = retry_after_s


class NoPendingLink(LinkError):
    code = "no_pending_link"


class WrongCode(LinkError):
    code = "wrong_code"

    def __init__(self, attempts_left: int) -> None:
        super().__init__("that code is not right")
        self.attempts_left = attempts_left


class LinkBurned(LinkError):
    code = "link_burned"


@dataclass(frozen=True)
class LinkStarted:
    link_id: str
    expires_in_s: int


@dataclass(frozen=True)
class LinkCompleted:
    conversation_id: str
    merged_from: str


class LinkService:
    """Starts and verifies links of chat sessions to phone numbers."""

    def __init__(
        self,
        *,
        store: LinkStore,
        identity: IdentityResolver,
        inbound: InboundSink,
        send_reply: ReplySink,
        ops: OpsEmitter,
        code_key: bytes,
        mapping_min_ttl_s: int,
    ) -> None:
        self._store = store
        self._identity = identity
        self._inbound = inbound
        self._send_reply = send_reply
        self._ops = ops
        self._code_key = code_key
        self._mapping_min_ttl_s = mapping_min_ttl_s

    async def start(self, session_id: str, raw_phone: str) -> LinkStarted:
        """Send a one-time code to `raw_phone` for this session. Raises a `LinkError`,
        `InvalidPhoneNumber`, or `PublishFailed` (nothing was sent)."""
        phone = normalize_phone(raw_phone, self._identity.default_region)
        if not codes.can_receive_codes(phone):
            raise InvalidPhoneNumber("this number cannot receive verification codes")
        linked = await self._identity.linked_conversation(Channel.CHAT, session_id)
        if linked is not None:
            raise AlreadyLinked(linked)
        ttl_s = self._store.limits.code_ttl_s
        link_id, code = codes.new_link_id(), codes.new_code()
        digest = codes.code_digest(self._code_key, link_id, phone, code)
        wait_ms = await self._store.start(session_id, phone, link_id, digest)
        if wait_ms:
            await self._reject(session_id, "link_rate_limited")
            raise RateLimited(retry_after_s=max(1, -(-wait_ms // 1000)))
        conversation_id = await self._identity.resolve(Channel.SMS, phone)
        reply = Reply(
            reply_id=codes.code_reply_id(link_id),
            in_reply_to=codes.link_message_id(link_id),
            conversation_id=conversation_id,
            channel=Channel.SMS,
            address=phone,
            text=codes.code_text(code, ttl_s),
            trace=new_trace(),
        )
        await self._send_reply(reply)
        await self._ops.emit(
            Lifecycle.REPLY_EMITTED,
            channel=Channel.SMS,
            conversation_id=conversation_id,
            message_id=reply.in_reply_to,
            reply_id=reply.reply_id,
            attributes={"purpose": "link_code"},
        )
        log.info(
            "ingress.link.started",
            session_id=session_id,
            link_id=link_id,
            conversation_id=conversation_id,
        )
        return LinkStarted(link_id=link_id, expires_in_s=ttl_s)

    async def verify(
        self, session_id: str, raw_code: str, session_expires_at: int
    ) -> LinkCompleted:
        """Check the code; on success link the session to the phone's conversation.
        Raises a `LinkError`, or `PublishFailed` (retry with the same code)."""
        code = codes.clean_code(raw_code)
        if code is None:
            raise BadCodeFormat("the code is six digits")
        pending = await self._store.reserve_attempt(session_id)
        if pending is None:
            linked = await self._identity.linked_conversation(Channel.CHAT, session_id)
            if linked is not None:
                raise AlreadyLinked(linked)
            raise NoPendingLink("no pending link: it expired, was used up, or never started")
        max_attempts = self._store.limits.max_attempts
        if not codes.code_matches(
            self._code_key, pending.link_id, pending.phone, code, pending.digest
        ):
            if not pending.verified and pending.attempts >= max_attempts:
                await self._store.burn(session_id, pending.link_id)
                await self._reject(session_id, "link_burned")
                raise LinkBurned("too many wrong codes: this link is void, start a new one")
            await self._reject(session_id, "link_code_wrong")
            raise WrongCode(attempts_left=max(0, max_attempts - pending.attempts))
        if not pending.verified and not await self._store.mark_verified(
            session_id, pending.link_id
        ):
            raise NoPendingLink("the link was replaced or expired meanwhile; start a new one")
        return await self._complete(session_id, pending.link_id, pending.phone, session_expires_at)

    async def _complete(
        self, session_id: str, link_id: str, phone: str, session_expires_at: int
    ) -> LinkCompleted:
        target = await self._identity.resolve(Channel.SMS, phone)
        linked = await self._identity.linked_conversation(Channel.CHAT, session_id)
        if linked is not None and linked != target:
            # Merging one phone's memory into another phone's would leak it: refuse.
            raise AlreadyLinked(linked)
        previous = await self._identity.resolve(Channel.CHAT, session_id)
        if previous != target:
            await self._inbound.publish(
                InboundMessage(
                    channel=Channel.CHAT,
                    kind=MessageKind.IDENTITY_LINKED,
                    provider_message_id=codes.link_message_id(link_id),
                    address=session_id,
                    conversation_id=target,
                    merge_from=previous,
                    trace=new_trace(),
                )
            )
        remaining_s = session_expires_at - int(time.time())
        await self._store.finish(
            session_id, link_id, target, max(remaining_s, self._mapping_min_ttl_s)
        )
        log.info(
            "ingress.link.verified",
            session_id=session_id,
            link_id=link_id,
            conversation_id=target,
            merge_from=previous,
        )
        return LinkCompleted(conversation_id=target, merged_from=previous)

    async def _reject(self, session_id: str, reason: str) -> None:
        await self._ops.emit(
            Lifecycle.REJECTED,
            channel=Channel.CHAT,
            conversation_id=await self._identity.resolve(Channel.CHAT, session_id),
            reason=reason,
        )
        log.info("ingress.link.refused", session_id=session_id, reason=reason)
