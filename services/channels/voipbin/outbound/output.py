"""VoiceOutput: carries out the brain's voice replies on live VoIPBin calls (see the package
docstring for the design)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable
from typing import Any

from prometheus_client import Counter

from services.channels.voipbin import actions as voipbin_actions
from services.channels.voipbin.client import VoipbinClient
from services.channels.voipbin.errors import VoipbinError
from services.channels.voipbin.outbound.guard import CallGuard, CallOver, SpeakingLost
from services.channels.voipbin.outbound.hangups import HangupSchedule, drain_forever
from services.channels.voipbin.outbound.policy import VoicePolicy
from services.channels.voipbin.profile import NAME
from services.channels.voipbin.store import (
    CallRecord,
    CallRegistry,
    FetchClaims,
    FetchOutcome,
    ReplyLedger,
)
from services.common.consuming import PermanentFailure
from services.common.inbox import InboxWriter
from services.common.ops import OpsEmitter
from shared.contracts import Lifecycle, Reply, ReplyKind, ReplyModeKind
from shared.contracts.inbox import HeldAnswer
from shared.logs import get_logger

log = get_logger("egress.voice")

VOICE_SPOKEN = Counter("switchboard_voice_spoken_total", "Voice replies spoken", ["via"])
VOICE_ERRORS = Counter("switchboard_voice_errors_total", "VoIPBin error answers", ["status"])

_CALL_ID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_SPOKEN = "spoken"
"""Ledger step: the reply's text reached VoIPBin (a retry of its hangup must not repeat it)."""


class VoiceOutput:
    """The outbound adapter of VoIPBin voice: `Reply.address` is the VoIPBin call id."""

    channel = NAME

    def __init__(
        self,
        *,
        client: VoipbinClient,
        calls: CallRegistry,
        ledger: ReplyLedger,
        claims: FetchClaims,
        inbox: InboxWriter,
        ops: OpsEmitter,
        hangups: HangupSchedule,
        policy: VoicePolicy | None = None,
    ) -> None:
        self._client = client
        self._calls = calls
        self._ledger = ledger
        self._claims = claims
        self._inbox = inbox
        self._ops = ops
        self._policy = policy or VoicePolicy()
        self._guard = CallGuard(client, calls, self._policy)
        self._hangups = hangups

    async def deliver(self, reply: Reply) -> None:
        """Carry out `reply` once; raise `PermanentFailure` to park it, anything else to retry."""
        ids = _ids(reply)
        if not _CALL_ID.match(reply.address):
            raise PermanentFailure("invalid_address", "the reply's address is not a call id")
        verdict = await self._ledger.check(reply.reply_id, reply.address, reply.fence)
        if verdict == 0:
            await self._ops.emit(Lifecycle.DEDUPED, **ids)
            return
        if verdict < 0:
            await self._ops.emit(Lifecycle.FENCED, reason="stale_fencing_token", **ids)
            return
        try:
            await self._carry_out(reply)
        except CallOver as over:
            log.info("egress.voice.call_over", call_id=reply.address, status=str(over))
            await self._ops.emit(Lifecycle.REJECTED, reason="call_ended", **ids)
        except VoipbinError as exc:
            VOICE_ERRORS.labels(str(exc.status)).inc()
            if exc.retryable:
                raise  # process_reliably retries, then parks it
            reason = re.sub(r"[^a-z0-9_]+", "_", exc.reason.lower())
            raise PermanentFailure(f"voipbin_{reason}", str(exc)) from None
        await self._ledger.done(reply.reply_id)

    async def _carry_out(self, reply: Reply) -> None:
        call_id = reply.address
        if reply.kind is ReplyKind.CLOSE:
            await self._close(call_id)
            return
        record = await self._calls.get(call_id) or CallRecord(call_id)
        if record.ended:
            raise CallOver("ended")
        if reply.kind is ReplyKind.OPEN:
            await self._open(reply, record)
        elif reply.kind is ReplyKind.STOP:
            await self._stop(reply, record)
        elif reply.reply.kind is ReplyModeKind.SYNC and reply.part == 0:
            if not await self._answer_fetch(reply):
                await self._speak(reply, record, late=True)
        else:
            await self._speak(reply, record)

    # -- sessions ---------------------------------------------------------------------------

    async def _open(self, reply: Reply, record: CallRecord) -> None:
        call_id = record.call_id
        if not record.conversation_id:
            await self._calls.update(call_id, conversation_id=reply.conversation_id)
        if not record.transcribe_id:
            transcribe = await self._guard.run(
                call_id, lambda: self._client.create_transcribe(call_id, self._policy.language)
            )
            # Also maps transcribe -> call: transcripts name only their transcribe id.
            await self._calls.update(call_id, transcribe_id=_id_of(transcribe, "transcribe"))
        if not record.speaking_id and not record.talk_only:
            await self._open_speaking(call_id)
        log.info("egress.voice.opened", call_id=call_id, conversation_id=reply.conversation_id)

    async def _open_speaking(self, call_id: str) -> str:
        """Create the call's speaking session; "" when VoIPBin will not give one (talk then)."""
        policy = self._policy
        try:
            speaking = await self._guard.run(
                call_id,
                lambda: self._client.create_speaking(
                    call_id, policy.language, policy.tts_provider, policy.voice_id
                ),
            )
        except VoipbinError as exc:
            if exc.retryable or exc.state_invalid or exc.status in (401, 403):
                raise
            log.warning("egress.voice.speaking_unavailable", call_id=call_id, reason=exc.reason)
            await self._calls.update(call_id, talk_only="1")
            return ""
        speaking_id = _id_of(speaking, "speaking")
        await self._calls.update(call_id, speaking_id=speaking_id)
        return speaking_id

    async def _close(self, call_id: str) -> None:
        await self._calls.mark_ended(call_id)  # first: nothing more is said, whatever follows
        record = await self._calls.get(call_id) or CallRecord(call_id)
        if record.speaking_id:
            await _unless_gone(self._client.stop_speaking(record.speaking_id))
        if record.transcribe_id:
            await _unless_gone(self._client.stop_transcribe(record.transcribe_id))
        log.info("egress.voice.closed", call_id=call_id)

    # -- speech -----------------------------------------------------------------------------

    async def _answer_fetch(self, reply: Reply) -> bool:
        """Hand the answer to the ingress instance holding VoIPBin's `fetch`, if it still
        waits for it; False when the holder already answered its fallback."""
        correlation_id = reply.reply.correlation_id or ""
        holder = reply.reply.reply_to or ""
        if await self._claims.claim(correlation_id, FetchOutcome.REPLY) is not FetchOutcome.REPLY:
            log.info("egress.voice.fetch_missed", call_id=reply.address, reply_id=reply.reply_id)
            return False
        if not await self._ledger.step_done(reply.reply_id, _SPOKEN):
            actions = voipbin_actions.spoken(
                reply.text,
                end_call=reply.end_call,
                language=self._policy.language,
                voice_id=self._policy.voice_id,
            )
            await self._inbox.post(
                holder,
                HeldAnswer(
                    correlation_id=correlation_id,
                    reply_id=reply.reply_id,
                    body=json.dumps(actions),
                ),
            )
            # The `talk` plays in the call too: a later hangup waits for it.
            await self._queue_speech(reply.address, reply.text.strip())
            await self._ledger.mark_step(reply.reply_id, _SPOKEN)
        await self._ops.emit(
            Lifecycle.QUEUED, attributes={"holder": holder, "via": "fetch"}, **_ids(reply)
        )
        return True

    async def _speak(self, reply: Reply, record: CallRecord, *, late: bool = False) -> None:
        """Say the text (Speaking API, else `talk`); then hang up if the call is to end."""
        text = reply.text.strip()
        via = ""
        if text and not await self._ledger.step_done(reply.reply_id, _SPOKEN):
            via = await self._say(record, text)
            await self._queue_speech(record.call_id, text)
            await self._ledger.mark_step(reply.reply_id, _SPOKEN)
            VOICE_SPOKEN.labels(via).inc()
        if reply.end_call:
            await self._hang_up_after_speech(record.call_id)
        if text or reply.end_call:
            attributes: dict[str, Any] = {"via": via or "earlier_attempt", "part": reply.part}
            if reply.end_call:
                attributes["hangup"] = True
            if late:
                attributes["late_for_fetch"] = True
            await self._ops.emit(Lifecycle.DELIVERED, attributes=attributes, **_ids(reply))

    async def _say(self, record: CallRecord, text: str) -> str:
        """Speak through the call's speaking session, or `talk` when it is unusable."""
        call_id, policy = record.call_id, self._policy
        if not record.talk_only:
            speaking_id = record.speaking_id or await self._open_speaking(call_id)
            if speaking_id:
                try:
                    await self._guard.run(
                        call_id,
                        lambda: self._client.say(speaking_id, text),
                        speaking_id=speaking_id,
                    )
                    return "say"
                except SpeakingLost as lost:
                    log.warning("egress.voice.speaking_lost", call_id=call_id, status=str(lost))
                    await self._calls.update(call_id, speaking_id="", talk_only="1")
        await self._guard.run(
            call_id, lambda: self._client.talk(call_id, text, policy.language, policy.voice_id)
        )
        return "talk"

    async def _queue_speech(self, call_id: str, text: str) -> None:
        if text:
            await self._calls.queue_speech(call_id, self._policy.speech_ms(text), _now_ms())

    async def _hang_up_after_speech(self, call_id: str) -> None:
        """Schedule the hangup for when the queued speech should have been heard (capped);
        `run_hangups` carries it out, so no other call waits meanwhile."""
        record = await self._calls.get(call_id)
        until_ms = record.speaking_until_ms if record else 0
        wait_ms = min(max(0, until_ms - _now_ms()), int(self._policy.hangup_wait_max_s * 1000))
        await self._hangups.schedule(call_id, _now_ms() + wait_ms)

    async def hang_up(self, call_id: str) -> None:
        """Hang the call up now (a scheduled hangup fell due)."""
        await _unless_gone(self._client.hangup(call_id))
        await self._calls.mark_ended(call_id)
        log.info("egress.voice.hung_up", call_id=call_id)

    async def run_hangups(self, poll_s: float = 0.1) -> None:
        """The loop that carries out scheduled hangups; one per egress instance."""
        await drain_forever(self._hangups, self.hang_up, poll_s)

    async def _stop(self, reply: Reply, record: CallRecord) -> None:
        """Barge-in: drop what the speaking session still has queued."""
        if record.speaking_id:
            await _unless_gone(self._client.flush(record.speaking_id))
        await self._calls.clear_speech(record.call_id)
        await self._ops.emit(Lifecycle.INTERRUPTED, **_ids(reply))


async def _unless_gone(request: Awaitable[Any]) -> None:
    """Run a request whose target may already be over: 404 and 409 mean "done already"."""
    try:
        await request
    except VoipbinError as exc:
        if not (exc.not_found or exc.state_invalid):
            raise


def _id_of(resource: dict[str, Any], what: str) -> str:
    ident = resource.get("id")
    if not isinstance(ident, str) or not ident:
        raise ValueError(f"VoIPBin created a {what} without an id")
    return ident


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ids(reply: Reply) -> dict[str, Any]:
    return {
        "channel": NAME,
        "conversation_id": reply.conversation_id,
        "reply_id": reply.reply_id,
    }
