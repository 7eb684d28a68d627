"""`GET|POST /v1/voipbin/fetch/{token}`: VoIPBin's `fetch` action (providers.md §1.4a).

VoIPBin sends `{"activeflow_id", "reference_id"}` (for a call, `reference_id` is the call id),
unsigned, and waits, with no timeout of its own, for HTTP 200 and a bare JSON array of
actions; anything else stops the call's flow. So the path carries an unguessable token (a
wrong one gets 404), a request VoIPBin would never send (a body that is not a JSON object, a
`reference_id` that is no id: `payloads.py`) gets 400, and every other outcome is a 200 with
valid actions within `deadline_s`:

- the call's first fetch asks the brain to greet the caller (GREETING, reply mode SYNC): the
  request is held while the brain answers and egress formats the answer as actions and rings
  this instance's inbox. If the deadline comes first, a fallback greeting is answered and the
  brain's greeting is spoken late through the Speaking API (the holder and egress race for
  one claim per request, so exactly one of them answers);
- a fetch carrying keypad digits (`?digits=` filled in by VoIPBin from
  `${voipbin.call.digits}`) asks the brain to answer them the same way (DTMF);
- any other fetch keeps the call in the loop at once.

Unless the answer hangs up, it ends with the loop's continuation: `digits_receive` (a DTMF
menu between turns, and what keeps the flow alive while speech runs through the transcribe
and Speaking APIs) and the next `fetch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram

from services.channels.sdk.publish import ChannelPublisher, PublishFailed
from services.channels.voipbin import actions as actions
from services.channels.voipbin.inbound.callers import CallResolver
from services.channels.voipbin.inbound.payloads import PayloadError, parse_fetch
from services.channels.voipbin.profile import NAME
from services.channels.voipbin.settings import FETCH_PATH, fetch_url
from services.channels.voipbin.store import CALL_TTL_S, FetchClaims, FetchOutcome
from services.common.ops import OpsEmitter
from shared.contracts import (
    Lifecycle,
    MessageKind,
    ReplyMode,
    ReplyModeKind,
)
from shared.contracts.inbox import HeldAnswer
from shared.logs import get_logger

log = get_logger("ingress.voice.fetch")

FETCHES = Counter("switchboard_voipbin_fetches_total", "VoIPBin fetch requests", ["outcome"])
FETCH_SECONDS = Histogram("switchboard_voipbin_fetch_seconds", "Time to answer a fetch")

CLAIM_MARGIN_S = 0.25
"""Kept back from the deadline to claim the answer and write the response."""
_DIGITS = re.compile(r"[0-9*#]{1,32}")
DIGITS_VARIABLE = "voipbin.call.digits"
STALE_ROUND_MS = 1_000
"""A round that brings back the previous round's keys this fast did not wait for a key."""
SORRY_TEXT = "Sorry, something went wrong on our side. Please call again later."
ONE_MOMENT_TEXT = "One moment, please."


class VoipbinFetch:
    """Answers `fetch` requests, holding those that wait for the brain."""

    def __init__(
        self,
        *,
        token: str,
        public_base_url: str,
        resolver: CallResolver,
        publisher: ChannelPublisher,
        claims: FetchClaims,
        ops: OpsEmitter,
        instance_id: str,
        deadline_s: float,
        hold_ms: int,
        fallback_text: str,
        language: str,
        voice_id: str,
    ) -> None:
        self._token = token
        self._loop_url = fetch_url(public_base_url, token)
        self._resolver = resolver
        self._publisher = publisher
        self._claims = claims
        self._ops = ops
        self._instance_id = instance_id
        self._deadline_s = deadline_s
        self._hold_ms = hold_ms
        self._fallback_text = fallback_text
        self._language = language
        self._voice_id = voice_id
        self._pending: dict[str, asyncio.Future[list[actions.Action]]] = {}

    def router(self) -> APIRouter:
        router = APIRouter(tags=["voice"])
        router.add_api_route(
            FETCH_PATH + "/{token}", self.fetch, methods=["GET", "POST"], response_model=None
        )
        return router

    async def fetch(self, token: str, request: Request) -> JSONResponse:
        """One `fetch` action: always 200 and a bare action array, unless the token is wrong."""
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            FETCHES.labels("bad_token").inc()
            await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason="bad_fetch_token")
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, {"error": "not_found", "message": "Not Found"}
            )
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._deadline_s
        round_no = _round(request.query_params.get("n"))
        try:
            call_id = parse_fetch(await request.body(), request.query_params).reference_id or ""
        except PayloadError as error:
            # Outside the fallback below: a request VoIPBin never sends is refused, not played.
            FETCHES.labels("bad_request").inc()
            await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason=error.code)
            log.info("ingress.voice.fetch.bad_request", error=error.code, field=error.field)
            raise HTTPException(status.HTTP_400_BAD_REQUEST, error.detail()) from None
        digits = request.query_params.get("digits", "").strip()
        try:
            async with asyncio.timeout(self._deadline_s - CLAIM_MARGIN_S / 2):
                answer, outcome = await self._answer(call_id, digits, round_no, deadline)
        except Exception as exc:  # whatever happens, VoIPBin gets valid actions in time
            log.warning("ingress.voice.fetch.failed", error=type(exc).__name__)
            # Keep the caller on the line: the next round may find the system well again.
            answer = [self._fallback(MessageKind.GREETING)[0], *self._continue(round_no)]
            outcome = "error"
        FETCHES.labels(outcome).inc()
        FETCH_SECONDS.observe(loop.time() - started)
        return JSONResponse(answer)

    async def on_inbox_entry(self, entry: HeldAnswer) -> None:
        """Egress's formatted answer for a held request: a VoIPBin action array."""
        future = self._pending.get(entry.correlation_id)
        if future is None or future.done():
            return  # answered by the fallback already, or held by an instance that restarted
        try:
            answer = json.loads(entry.body)
        except ValueError:
            answer = None
        if isinstance(answer, list) and all(isinstance(a, dict) and "type" in a for a in answer):
            future.set_result(answer)
        else:
            log.warning("ingress.voice.fetch.bad_inbox_entry")

    # -- steps ---------------------------------------------------------------------------

    async def _answer(
        self, call_id: str, digits: str, round_no: int, deadline: float
    ) -> tuple[list[actions.Action], str]:
        if not call_id:
            return [actions.talk(SORRY_TEXT, self._language), actions.hangup()], "no_call"
        record = await self._resolver.record(call_id)
        if record.ended:
            return [actions.hangup()], "call_over"
        registry = self._resolver.registry
        first = await registry.throttle(f"greeted:{call_id}", CALL_TTL_S * 1000)
        if first:
            # The call_progressing event may be late or lost: make sure the sessions open.
            # Same provider id as the event's, so the brain and egress see it once.
            await self._publish(
                MessageKind.CALL_STARTED, call_id, record.conversation_id, f"{call_id}:progressing"
            )
            kind, message_id, text = MessageKind.GREETING, f"{call_id}:greeting", ""
        elif not _DIGITS.fullmatch(digits):
            await registry.next_round(call_id, _now_ms(), "")
            return self._continue(round_no), "hold"
        elif await self._stale(call_id, digits):
            # The same keys straight back: VoIPBin kept them in ${voipbin.call.digits} and
            # `digits_receive` ended at once. Wait a round instead of answering them again
            # (and instead of a tight loop of fetches).
            return [actions.sleep(self._hold_ms), actions.fetch(self._next_url(round_no))], "stale"
        else:
            kind, message_id, text = MessageKind.DTMF, f"{call_id}:dtmf:{round_no}", digits
        answer, outcome = await self._ask_brain(
            kind, call_id, record.conversation_id, message_id, text, deadline
        )
        if not actions.ends_call(answer):
            answer = [*answer, *self._continue(round_no)]
        return answer, outcome

    async def _ask_brain(
        self,
        kind: MessageKind,
        call_id: str,
        conversation_id: str,
        message_id: str,
        text: str,
        deadline: float,
    ) -> tuple[list[actions.Action], str]:
        """Publish a SYNC message and hold until egress answers, or answer the fallback."""
        loop = asyncio.get_running_loop()
        claim_at = deadline - CLAIM_MARGIN_S
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[list[actions.Action]] = loop.create_future()
        self._pending[correlation_id] = future
        reply_by = datetime.now(UTC) + timedelta(seconds=claim_at - loop.time())
        mode = ReplyMode(
            kind=ReplyModeKind.SYNC,
            deadline_at=reply_by,
            correlation_id=correlation_id,
            reply_to=self._instance_id,
        )
        try:
            try:
                async with asyncio.timeout_at(claim_at):
                    await self._publish(kind, call_id, conversation_id, message_id, text, mode)
                    return await asyncio.shield(future), "answered"
            except (TimeoutError, PublishFailed):
                pass
            # The deadline is near (or Kafka did not ack): whoever claims first answers.
            if (
                await self._claims.claim(correlation_id, FetchOutcome.FALLBACK)
                is FetchOutcome.REPLY
            ):
                # Egress won by a hair: its inbox entry is on the way.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline - CLAIM_MARGIN_S / 2):
                        return await asyncio.shield(future), "answered_late"
            return self._fallback(kind), "fallback"
        finally:
            self._pending.pop(correlation_id, None)

    def _fallback(self, kind: MessageKind) -> list[actions.Action]:
        text = self._fallback_text if kind is MessageKind.GREETING else ONE_MOMENT_TEXT
        return [actions.talk(text, self._language, self._voice_id)]

    async def _stale(self, call_id: str, digits: str) -> bool:
        """Are these the keys of the round before, back faster than anyone presses keys?"""
        now = _now_ms()
        previous_at, previous_digits = await self._resolver.registry.next_round(
            call_id, now, digits
        )
        return digits == previous_digits and now - previous_at < STALE_ROUND_MS

    def _continue(self, round_no: int) -> list[actions.Action]:
        """Keep the call in the loop: forget answered keys, listen for keys, fetch again."""
        return [
            actions.variable_set(DIGITS_VARIABLE, ""),
            actions.digits_receive(self._hold_ms),
            actions.fetch(self._next_url(round_no)),
        ]

    def _next_url(self, round_no: int) -> str:
        # VoIPBin substitutes ${...} in every option string before the action runs, so the
        # next request carries the keys pressed during `digits_receive`.
        return f"{self._loop_url}?n={round_no + 1}&digits=${{{DIGITS_VARIABLE}}}"

    async def _publish(
        self,
        kind: MessageKind,
        call_id: str,
        conversation_id: str,
        message_id: str,
        text: str = "",
        mode: ReplyMode | None = None,
    ) -> None:
        await self._publisher.publish(
            kind=kind,
            provider_message_id=message_id,
            address=call_id,
            conversation_id=conversation_id,
            text=text,
            reply=mode,
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _round(value: str | None) -> int:
    """The round number we wrote into the next fetch URL; anything else is round 0.
    `isascii()`: `str.isdigit` is true for "²" and other digits `int` cannot read."""
    if value and value.isascii() and value.isdigit() and len(value) < 9:
        return int(value)
    return 0
