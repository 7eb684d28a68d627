"""SMS delivery through Twilio: exactly one text per reply, consent honoured, failures parked.

For each reply:
1. Refuse what Twilio would refuse anyway (over 1,600 characters, an address that is not E.164)
   with a clear dead-letter reason.
2. Claim it in the delivery ledger: a duplicate is dropped, a stale fence refused, and the send
   intent is recorded before Twilio is called.
3. Skip numbers that opted out or that Twilio called undeliverable.
4. If an earlier attempt may have reached Twilio (the process died, or a request timed out),
   look for the message in Twilio's log before sending again, once Twilio has had time to
   finish that attempt (`UNKNOWN_OUTCOME_SETTLE_S`).
5. Send, paced by the per-sender rate limit, retrying 429 and 5xx and network errors with
   jittered backoff (honouring Retry-After) within a budget. Other 4xx are not retried.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

from prometheus_client import Counter

from services.channels.sms.client import (
    SentMessage,
    TwilioClient,
    TwilioError,
    TwilioUnreachable,
)
from services.channels.sms.profile import NAME
from services.channels.sms.rate_limit import SenderRateLimit
from services.channels.sms.store import Claim, ClaimKind, SmsConsent, SmsLedger, delivery_status
from services.channels.sms.twilio import INVALID_NUMBER_CODES, MAX_BODY_CHARS, UNSUBSCRIBED
from services.common.backoff import RetryPolicy
from services.common.cancellation import raise_if_cancelling
from services.common.consuming import PermanentFailure
from services.common.ops import OpsEmitter
from shared.contracts import DeliveryReceipt, DeliveryStatus, Lifecycle, Reply, ReplyKind
from shared.logs import get_logger

log = get_logger("egress.sms")

SMS_SENT = Counter("switchboard_sms_sent_total", "SMS accepted by Twilio")
SMS_SEND_ERRORS = Counter("switchboard_sms_send_errors_total", "Twilio send errors", ["kind"])

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Twilio's date_created has whole seconds and its clock is not ours: widen the lookup window.
_LOOKUP_SLACK_S = 5.0


class TwilioLookupFailed(OSError):
    """Twilio's message log could not be read; the reply is retried like any outage."""


UNKNOWN_OUTCOME_SETTLE_S = 2.0
"""After a send whose outcome is unknown (a timeout, a dropped connection, a 5xx), wait at
least this long before looking for the message in Twilio's log. Twilio may still be working
on the request we gave up on: a look-up made at once could miss a message stored a moment
later and send it again (seen once in seven broker-kill runs on a starved machine: a reply
texted twice). The wait only delays a retry that is already uncertain."""

SEND_POLICY = RetryPolicy(max_attempts=20, base_s=0.5, cap_s=30.0, budget_s=120.0)
"""Sends of one reply: 429/5xx/network errors retried with full jitter, never sooner than
Twilio's `Retry-After`, for up to two minutes; then the reply is parked."""


class SmsOutput:
    """The outbound adapter of SMS: Twilio's REST API, once per reply, within rate limits."""

    channel = NAME

    def __init__(
        self,
        *,
        client: TwilioClient,
        ledger: SmsLedger,
        consent: SmsConsent,
        rate_limit: SenderRateLimit,
        ops: OpsEmitter,
        sender: str,
        status_callback: str | None,
        owner: str,
        policy: RetryPolicy | None = None,
        settle_s: float = UNKNOWN_OUTCOME_SETTLE_S,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._consent = consent
        self._rate_limit = rate_limit
        self._ops = ops
        self._sender = sender
        self._status_callback = status_callback
        self._owner = owner
        self._policy = policy or SEND_POLICY
        self._settle_s = settle_s

    async def run(self) -> None:
        """Nothing runs in the background: status callbacks arrive through ingress."""
        return None

    async def close(self) -> None:
        """Close the Twilio HTTP client."""
        await self._client.aclose()

    async def deliver(self, reply: Reply) -> None:
        """Send `reply` as one SMS at most once; raise `PermanentFailure` to park it."""
        ids = {
            "channel": NAME,
            "conversation_id": reply.conversation_id,
            "reply_id": reply.reply_id,
        }
        if reply.kind is ReplyKind.STOP or not reply.text.strip():
            await self._ops.emit(Lifecycle.REJECTED, reason="nothing_to_send", **ids)
            return
        _check_sendable(reply)
        claim = await self._claim(reply)
        if claim.kind is ClaimKind.DONE:
            await self._ops.emit(Lifecycle.DEDUPED, **ids)
            return
        if claim.kind is ClaimKind.STALE:
            await self._ops.emit(Lifecycle.FENCED, reason="stale_fencing_token", **ids)
            return
        blocked = await self._consent.blocked(reply.address)
        if blocked is not None:
            await self._suppress(reply, blocked)
            return
        if claim.kind is ClaimKind.UNKNOWN and await self._found_at_twilio(reply, claim):
            return
        await self._send(reply, claim)

    async def _claim(self, reply: Reply) -> Claim:
        while True:
            raise_if_cancelling()  # a cancel lost inside a Redis command (gh-86296)
            claim = await self._ledger.claim(
                reply.reply_id, reply.conversation_id, self._owner, reply.fence
            )
            if claim.kind is not ClaimKind.BUSY:
                return claim
            # Another instance is mid-send (a rebalance moved the partition): let it finish.
            await asyncio.sleep(min(1.0, int(claim.detail) / 1000))

    async def _send(self, reply: Reply, claim: Claim) -> None:
        deadline = time.monotonic() + self._policy.budget_s
        outcome_unknown = False
        attempt = 0
        while True:
            attempt += 1
            if outcome_unknown:
                if await self._found_at_twilio(reply, claim):
                    return
                outcome_unknown = False
            await self._rate_limit.acquire(self._sender)
            retry_after: float | None = None
            try:
                sent = await self._client.send(reply.address, reply.text, self._status_callback)
            except TwilioUnreachable as exc:
                SMS_SEND_ERRORS.labels("unreachable").inc()
                outcome_unknown, last_error = True, f"no answer from Twilio ({exc})"
            except TwilioError as exc:
                SMS_SEND_ERRORS.labels(str(exc.code or exc.status)).inc()
                if not await self._worth_retrying(reply, exc):
                    return
                # A 5xx may come after Twilio stored the message; a 429 never does.
                outcome_unknown = exc.status >= 500
                last_error, retry_after = str(exc), exc.retry_after_s
            else:
                await self._accepted(reply, sent, attempt)
                return
            delay = self._policy.delay_s(attempt, retry_after)
            if outcome_unknown:
                delay = max(delay, self._settle_s)
            if attempt >= self._policy.max_attempts or time.monotonic() + delay > deadline:
                if not outcome_unknown:
                    await self._ledger.mark_unsent(reply.reply_id, reply.conversation_id)
                raise PermanentFailure(
                    "twilio_unavailable", f"gave up after {attempt} attempts: {last_error}"
                )
            log.warning("egress.sms.retry", reply_id=reply.reply_id, attempt=attempt, delay_s=delay)
            await asyncio.sleep(delay)

    async def _worth_retrying(self, reply: Reply, error: TwilioError) -> bool:
        """Handle a Twilio error answer: True to retry, False when done (the number opted
        out), `PermanentFailure` when it must be parked."""
        if error.code == UNSUBSCRIBED:
            await self._consent.opt_out(reply.address, f"twilio:{UNSUBSCRIBED}")
            await self._suppress(reply, "opted_out", error_code=str(UNSUBSCRIBED))
            return False
        if error.code in INVALID_NUMBER_CODES:
            await self._consent.mark_bad(reply.address, error.code)
            await self._suppress(reply, f"bad_number:{error.code}", error_code=str(error.code))
            raise PermanentFailure(f"twilio_{error.code}", error.message)
        if not error.retryable:
            await self._ledger.mark_unsent(reply.reply_id, reply.conversation_id)
            await self._receipt(reply, DeliveryStatus.FAILED, error_code=str(error.code))
            raise PermanentFailure(f"twilio_{error.code or error.status}", error.message)
        return True

    async def _accepted(self, reply: Reply, sent: SentMessage, attempt: int) -> None:
        status = delivery_status(sent.status) or DeliveryStatus.QUEUED
        latest = await self._ledger.record_sent(
            reply.reply_id, reply.conversation_id, sent.sid, status
        )
        SMS_SENT.inc()
        await self._ops.emit(
            Lifecycle.QUEUED,
            channel=NAME,
            conversation_id=reply.conversation_id,
            reply_id=reply.reply_id,
            attributes={"provider_message_id": sent.sid, "attempts": attempt},
        )
        await self._receipt(reply, latest, provider_message_id=sent.sid)

    async def _found_at_twilio(self, reply: Reply, claim: Claim) -> bool:
        """Whether an earlier attempt's message is in Twilio's log (then record it as sent)."""
        since = claim.intent_ms / 1000 - _LOOKUP_SLACK_S
        try:
            messages = await self._client.recent_messages(
                reply.address, datetime.fromtimestamp(since, UTC)
            )
        except (TwilioUnreachable, TwilioError) as exc:
            raise TwilioLookupFailed(f"message lookup failed: {exc}") from None
        candidates = [
            message
            for message in messages
            if message.body == reply.text
            and (message.created_at is None or message.created_at.timestamp() >= since)
        ]
        for message in reversed(candidates):  # oldest first
            owner = await self._ledger.sid_owner(message.sid)
            if owner not in (None, reply.reply_id):
                continue  # the same text sent for another reply
            status = delivery_status(message.status) or DeliveryStatus.QUEUED
            latest = await self._ledger.record_sent(
                reply.reply_id, reply.conversation_id, message.sid, status
            )
            await self._ops.emit(
                Lifecycle.DEDUPED,
                channel=NAME,
                conversation_id=reply.conversation_id,
                reply_id=reply.reply_id,
                reason="found_at_twilio",
                attributes={"provider_message_id": message.sid},
            )
            await self._receipt(reply, latest, provider_message_id=message.sid)
            return True
        return False

    async def _suppress(self, reply: Reply, reason: str, error_code: str | None = None) -> None:
        await self._ledger.suppress(reply.reply_id, reply.conversation_id, reason)
        await self._ops.emit(
            Lifecycle.REJECTED,
            channel=NAME,
            conversation_id=reply.conversation_id,
            reply_id=reply.reply_id,
            reason=reason,
        )
        await self._receipt(reply, DeliveryStatus.FAILED, error_code=error_code or reason)

    async def _receipt(
        self,
        reply: Reply,
        status: DeliveryStatus,
        *,
        provider_message_id: str | None = None,
        error_code: str | None = None,
    ) -> None:
        await self._ops.receipt(
            DeliveryReceipt(
                reply_id=reply.reply_id,
                conversation_id=reply.conversation_id,
                channel=NAME,
                status=status,
                provider_message_id=provider_message_id,
                error_code=error_code,
            )
        )


def _check_sendable(reply: Reply) -> None:
    if len(reply.text) > MAX_BODY_CHARS:
        raise PermanentFailure(
            "body_too_long",
            f"{len(reply.text)} characters; Twilio accepts at most {MAX_BODY_CHARS}",
        )
    if not _E164.match(reply.address):
        raise PermanentFailure("invalid_address", "the reply's address is not an E.164 number")
