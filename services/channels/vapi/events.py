"""`POST /v1/vapi/events`: VAPI's server URL (providers.md §3.1-3.4, docs/vapi.md).

Every request is `{"message": {"type", "call", "timestamp", ...}}` authenticated as
`VAPI_AUTH_MODE` says (`auth.py`). The endpoint:
- checks the credential on the raw body first (401, nothing published, when it is wrong,
  missing or stale);
- refuses a body or a field it reads that is not what VAPI sends (`payloads.py`) with 400
  and a machine-readable code;
- answers the types that expect an answer in their exact shape (`assistant-request` within
  `VAPI_GREETING_DEADLINE_S`, always; `tool-calls`, `function-call`,
  `handoff-destination-request`, `transfer-destination-request`), and everything else with
  200 `{}`: unknown types, and messages about no call (VAPI Chat events);
- drops an event it already handled (key: call id, type, timestamp; VAPI has no delivery
  id) with the answer it gave the first time, publishing nothing again;
- answers 503 only when Kafka did not acknowledge (or Redis is away), so a retry can help;
  never a 5xx for anything else.

What each event becomes (`InboundMessage`, keyed by the caller's conversation):
- `assistant-request`: GREETING `<call id>:greeting`, reply mode SYNC (`assistant.py`);
- `status-update` `ended` and `end-of-call-report`: one CALL_ENDED `<call id>:ended` for
  both, and an ops alert when `endedReason` says our custom LLM failed;
- `user-interrupted` and `speech-update` (user, started): PARTIAL_TRANSCRIPT
  `<call id>:interrupt:<timestamp>`, a barge-in signal, at most one per call per
  `BARGE_IN_WINDOW_MS`;
- `hang`: an ops alert (the assistant has been silent too long).

A duplicate `assistant-request` is answered at once with the fallback greeting: VAPI only
repeats one whose answer it did not get in time, and a second GREETING would be one turn
anyway (same provider id). A duplicate held on the same instance while the first still
waits shares the first one's answer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from services.channels.sdk.plugin import NoBackgroundWork
from services.channels.sdk.publish import ChannelPublisher, PublishFailed
from services.channels.vapi.answers import answer_for
from services.channels.vapi.assistant import Greetings, transient_assistant
from services.channels.vapi.auth import verifier_for
from services.channels.vapi.callers import CallRef, conversation_of
from services.channels.vapi.payloads import PayloadError, VapiMessage, parse_message
from services.channels.vapi.profile import NAME
from services.channels.vapi.settings import EVENTS_PATH, VapiSettings
from services.channels.vapi.store import VapiCalls
from services.common.ops import OpsEmitter
from shared.contracts import Lifecycle, MessageKind
from shared.contracts.inbox import HeldAnswer
from shared.logs import get_logger

log = get_logger("ingress.vapi")

VAPI_EVENTS = Counter(
    "switchboard_vapi_events_total", "VAPI server-URL events", ["type", "outcome"]
)
GREETING_SECONDS = Histogram(
    "switchboard_vapi_assistant_request_seconds", "Time to answer an assistant-request"
)

ANSWER_MARGIN_S = 0.3
"""Kept back from the greeting deadline to build and write the answer."""
BARGE_IN_WINDOW_MS = 300
"""`speech-update` and `user-interrupted` come together for one barge-in: one signal."""
CUSTOM_LLM_FAILURE = "pipeline-error-custom-llm"
KNOWN_TYPES = frozenset(
    {
        "assistant-request",
        "tool-calls",
        "function-call",
        "handoff-destination-request",
        "transfer-destination-request",
        "status-update",
        "end-of-call-report",
        "user-interrupted",
        "speech-update",
        "hang",
    }
)

Handler = Callable[[VapiMessage, CallRef], Awaitable[str]]


class VapiEvents(NoBackgroundWork):
    """The server-URL endpoint: verify, parse, dedupe, answer, publish."""

    def __init__(
        self,
        *,
        settings: VapiSettings,
        publisher: ChannelPublisher,
        identity: Any,
        calls: VapiCalls,
        ops: OpsEmitter,
        instance_id: str,
        barge_in_window_ms: int = BARGE_IN_WINDOW_MS,
    ) -> None:
        self._settings = settings
        self._barge_in_window_ms = barge_in_window_ms
        self._verifier = verifier_for(settings)
        self._publisher = publisher
        self._identity = identity
        self._calls = calls
        self._ops = ops
        self._greetings = Greetings(publisher, instance_id, settings.fallback_greeting)

    def router(self) -> APIRouter:
        """`POST /v1/vapi/events`."""
        router = APIRouter(tags=["vapi"])
        router.add_api_route(EVENTS_PATH, self.receive, methods=["POST"], response_model=None)
        return router

    async def on_held_answer(self, entry: HeldAnswer) -> None:
        """Egress's answer to a held `assistant-request` (register with the inbox)."""
        await self._greetings.on_held_answer(entry)

    async def receive(self, request: Request) -> JSONResponse:
        """One server-URL message."""
        started = asyncio.get_running_loop().time()
        body = await request.body()
        reason = self._verifier.verify(request.headers, body, time.time())
        if reason is not None:
            raise await self._unauthorized(reason)
        try:
            message = parse_message(body)
        except PayloadError as error:
            raise await self._refuse(error) from None
        label = message.type if message.type in KNOWN_TYPES else "other"
        answer = answer_for(message, self._settings)
        if message.type == "assistant-request":
            answer, outcome = await self._assistant_request(message, started)
        elif answer is not None:
            outcome = "answered"
        else:
            answer, outcome = {}, await self._handle(message)
        VAPI_EVENTS.labels(label, outcome).inc()
        return JSONResponse(answer)

    # -- assistant-request ---------------------------------------------------------------

    async def _assistant_request(
        self, message: VapiMessage, started: float
    ) -> tuple[dict[str, Any], str]:
        """Always answered, by the deadline: the brain's greeting or the fallback."""
        deadline = started + self._settings.greeting_deadline_s
        reply_by = deadline - ANSWER_MARGIN_S
        greeting, outcome = self._greetings.fallback, "fallback"
        try:
            # The outer bound covers Redis hanging before the greeting is even asked for.
            async with asyncio.timeout_at(deadline - ANSWER_MARGIN_S / 2):
                greeting, outcome = await self._greeting(message, reply_by)
        except TimeoutError:
            outcome = "timeout"
        except (PublishFailed, RedisError) as exc:
            outcome = "unavailable"
            log.warning("ingress.vapi.greeting.unavailable", error=type(exc).__name__)
        except Exception as exc:  # whatever happens, VAPI gets an assistant in time
            outcome = "error"
            log.warning("ingress.vapi.greeting.failed", error=type(exc).__name__)
        loop = asyncio.get_running_loop()
        GREETING_SECONDS.observe(loop.time() - started)
        log.info("ingress.vapi.assistant_request", outcome=outcome)
        return transient_assistant(self._settings, greeting, message.credential_id), outcome

    async def _greeting(self, message: VapiMessage, reply_by: float) -> tuple[str, str]:
        call = message.call
        if call is None:
            return self._greetings.fallback, "no_call"
        key = message.dedupe_key
        if key and not await self._calls.first_time(key):
            return await self._greetings.duplicate(call.call_id, reply_by), "duplicate"
        conversation_id = await conversation_of(self._identity, self._calls, call)
        return await self._greetings.ask(call.call_id, conversation_id, reply_by)

    # -- events without an answer ----------------------------------------------------------

    def _handler(self, message: VapiMessage) -> Handler | None:
        kind = message.type
        if kind == "end-of-call-report" or (kind == "status-update" and message.status == "ended"):
            return self._ended
        if kind == "user-interrupted" or (
            kind == "speech-update" and message.role == "user" and message.status == "started"
        ):
            return self._barge_in
        if kind == "hang":
            return self._hang
        return None

    async def _handle(self, message: VapiMessage) -> str:
        handler = self._handler(message)
        if handler is None:
            return "ignored"
        if message.call is None:
            return "no_call"
        key = message.dedupe_key
        try:
            if key and not await self._calls.first_time(key):
                return "duplicate"
            try:
                return await handler(message, message.call)
            except Exception:
                if key:  # let VAPI's retry be handled, not dropped as a duplicate
                    with contextlib.suppress(RedisError):
                        await self._calls.forget_event(key)
                raise
        except (PublishFailed, RedisError, TimeoutError) as exc:
            VAPI_EVENTS.labels(message.type, "unavailable").inc()
            log.warning("ingress.vapi.unavailable", type=message.type, error=type(exc).__name__)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                {"error": "unavailable", "message": "try again"},
            ) from None

    async def _ended(self, message: VapiMessage, call: CallRef) -> str:
        """Both `status-update ended` and `end-of-call-report` come: one CALL_ENDED."""
        conversation_id = await conversation_of(self._identity, self._calls, call)
        reason = message.ended_reason
        ended_key = f"{call.call_id}:ended"
        first = await self._calls.first_time(ended_key)
        try:
            if reason or first:
                await self._calls.mark_ended(call.call_id, reason)
            if reason.startswith(CUSTOM_LLM_FAILURE) and await self._calls.first_time(
                f"{call.call_id}:llm-alert"
            ):
                await self._alert(conversation_id, reason)
            if not first:
                return "already_ended"
            await self._publish(MessageKind.CALL_ENDED, call, conversation_id, ended_key)
        except Exception:
            if first:  # the retry must publish it
                with contextlib.suppress(RedisError):
                    await self._calls.forget_event(ended_key)
            raise
        return "call_ended"

    async def _barge_in(self, message: VapiMessage, call: CallRef) -> str:
        record = await self._calls.get(call.call_id)
        if record.ended:
            return "call_over"
        throttle = f"barge:{call.call_id}"
        if not await self._calls.throttle(throttle, self._barge_in_window_ms):
            return "throttled"
        moment = message.timestamp or uuid.uuid4().hex
        message_id = f"{call.call_id}:interrupt:{moment}"
        try:
            conversation_id = await conversation_of(self._identity, self._calls, call)
            await self._publish(MessageKind.PARTIAL_TRANSCRIPT, call, conversation_id, message_id)
        except Exception:
            with contextlib.suppress(RedisError):  # the retry must not find it throttled
                await self._calls.release_throttle(throttle)
            raise
        return "barge_in"

    async def _hang(self, message: VapiMessage, call: CallRef) -> str:
        conversation_id = await conversation_of(self._identity, self._calls, call)
        await self._alert(conversation_id, "hang")
        return "alerted"

    async def _alert(self, conversation_id: str, reason: str) -> None:
        await self._ops.emit(
            Lifecycle.FAILED, channel=NAME, conversation_id=conversation_id, reason=f"vapi:{reason}"
        )
        log.warning("ingress.vapi.alert", reason=reason, conversation_id=conversation_id)

    async def _publish(
        self, kind: MessageKind, call: CallRef, conversation_id: str, message_id: str
    ) -> None:
        await self._publisher.publish(
            kind=kind,
            provider_message_id=message_id,
            address=call.call_id,
            conversation_id=conversation_id,
        )

    # -- refusals --------------------------------------------------------------------------

    async def _unauthorized(self, reason: str) -> HTTPException:
        VAPI_EVENTS.labels("any", "unauthorized").inc()
        await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason=f"auth:{reason}")
        log.warning("ingress.vapi.unauthorized", reason=reason)
        return HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            {"error": reason, "message": "the request carries no valid VAPI credential"},
        )

    async def _refuse(self, error: PayloadError) -> HTTPException:
        VAPI_EVENTS.labels("any", "bad_request").inc()
        await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason=error.code)
        # The field's name only: its value is the sender's.
        log.info("ingress.vapi.bad_request", error=error.code, field=error.field)
        return HTTPException(status.HTTP_400_BAD_REQUEST, error.detail())
