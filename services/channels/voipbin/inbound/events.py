"""`POST /v1/voipbin/events`: VoIPBin's customer event webhook (providers.md §1.5).

Each request is `{"type": ..., "data": {...}}`, signed `X-VoIPBIN-Signature: sha256=<hex>`
over the raw body. VoIPBin sends each event from its own goroutine (no ordering) and retries
up to 3 times on connection errors and 5xx, so this endpoint:
- checks the signature first (401, nothing published, when it is wrong or missing);
- refuses a body or a field it reads that is not what VoIPBin sends (wrong JSON type, too
  long, lone surrogates, nested too deep: `payloads.py`) with 400 and a machine-readable code:
  VoIPBin counts any 4xx as delivered, so a hostile event is not retried either;
- answers 200 to everything it understands or chooses to ignore, and to business errors
  (an unknown call): a 5xx would only bring the same event back;
- answers 503 only when Kafka, Redis or VoIPBin's API is unavailable, so a retry can help;
- drops an event it already published (key: type, resource id, status or update time).

What each event becomes (`InboundMessage`, keyed by the caller's conversation):
- `call_progressing`: CALL_STARTED (the brain has egress open transcription and speaking);
- `transcript_created` with direction `in`: TEXT, one user turn;
- `transcribe_speech_started` / `_interim` (direction `in`): PARTIAL_TRANSCRIPT, a barge-in
  signal, at most one per call per `BARGE_IN_WINDOW_MS`;
- `call_hangup`: CALL_ENDED;
- `transcribe_*` and `speaking_*`: only remembered (which call a session belongs to).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from redis.exceptions import RedisError

from services.channels.sdk.publish import ChannelPublisher, PublishFailed
from services.channels.voipbin.errors import VoipbinError, VoipbinUnreachable
from services.channels.voipbin.inbound.callers import CallResolver, UnknownCall
from services.channels.voipbin.inbound.payloads import (
    CallData,
    EventData,
    PayloadError,
    SessionData,
    SpeechData,
    parse_envelope,
    validated,
)
from services.channels.voipbin.profile import NAME
from services.channels.voipbin.settings import EVENTS_PATH, VoipbinSettings
from services.channels.voipbin.signature import SIGNATURE_HEADER, signature_is_valid
from services.common.ops import OpsEmitter
from shared.contracts import Lifecycle, MessageKind
from shared.logs import get_logger

log = get_logger("ingress.voice")

VOICE_EVENTS = Counter("switchboard_voipbin_events_total", "VoIPBin events", ["type", "outcome"])

BARGE_IN_WINDOW_MS = 1000
"""Speech events come several per second while someone talks; one stop signal is enough."""
MAX_TRANSCRIPT = 8000

# Each handler takes the `data` model registered with it (a subclass of `EventData`).
Handler = Callable[[Any], Awaitable[str]]


class VoipbinEvents:
    """The event webhook: verify, dedupe, translate into inbound messages."""

    def __init__(
        self,
        *,
        settings: VoipbinSettings,
        resolver: CallResolver,
        publisher: ChannelPublisher,
        ops: OpsEmitter,
    ) -> None:
        self._secret = settings.voipbin_webhook_secret.get_secret_value()
        self._allow_unsigned = settings.voipbin_allow_unsigned
        self._resolver = resolver
        self._registry = resolver.registry
        self._publisher = publisher
        self._ops = ops
        self._handlers: dict[str, tuple[type[EventData], Handler]] = {
            "call_progressing": (CallData, self._call_progressing),
            "call_hangup": (CallData, self._call_hangup),
            "transcript_created": (SpeechData, self._transcript),
            "transcribe_speech_started": (SpeechData, self._speech),
            "transcribe_speech_interim": (SpeechData, self._speech),
            "transcribe_created": (SessionData, self._transcribe),
            "transcribe_progressing": (SessionData, self._transcribe),
            "speaking_started": (SessionData, self._speaking),
            "speaking_stopped": (SessionData, self._speaking),
        }

    def router(self) -> APIRouter:
        router = APIRouter(tags=["voice"])
        router.add_api_route(EVENTS_PATH, self.receive, methods=["POST", "PUT"])
        return router

    async def receive(self, request: Request) -> JSONResponse:
        """One webhook delivery."""
        body = await request.body()
        await self._verify(body, request.headers.get(SIGNATURE_HEADER))
        try:
            event_type, raw_data = parse_envelope(body)
            entry = self._handlers.get(event_type)
            if entry is None:
                VOICE_EVENTS.labels("other", "ignored").inc()
                return _ok("ignored")
            model, handler = entry
            data = validated(model, raw_data, "data")
        except PayloadError as error:
            raise await self._refuse(error) from None
        key = data.dedupe_key(event_type)
        try:
            if await self._registry.seen_event(key):
                VOICE_EVENTS.labels(event_type, "duplicate").inc()
                return _ok("duplicate")
            outcome = await handler(data)
            await self._registry.mark_event(key)
        except UnknownCall as exc:
            VOICE_EVENTS.labels(event_type, "unknown_call").inc()
            await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason="unknown_call")
            log.warning("ingress.voice.unknown_call", type=event_type, reason=str(exc))
            return _ok("unknown_call")
        except (PublishFailed, VoipbinUnreachable, RedisError, TimeoutError) as exc:
            VOICE_EVENTS.labels(event_type, "unavailable").inc()
            log.warning("ingress.voice.unavailable", type=event_type, error=type(exc).__name__)
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "try again") from None
        except VoipbinError as exc:  # retryable API errors (429/5xx) during a lookup
            VOICE_EVENTS.labels(event_type, "unavailable").inc()
            log.warning("ingress.voice.lookup_failed", type=event_type, reason=exc.reason)
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "try again") from None
        VOICE_EVENTS.labels(event_type, outcome).inc()
        return _ok(outcome)

    async def _verify(self, body: bytes, signature: str | None) -> None:
        if signature is None and self._allow_unsigned:
            return
        if not signature_is_valid(self._secret, body, signature):
            VOICE_EVENTS.labels("any", "bad_signature").inc()
            await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason="bad_signature")
            log.warning("ingress.voice.bad_signature", signed=signature is not None)
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                {"error": "bad_signature", "message": "invalid X-VoIPBIN-Signature"},
            )

    async def _refuse(self, error: PayloadError) -> HTTPException:
        VOICE_EVENTS.labels("any", "bad_request").inc()
        await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason=error.code)
        # The field's name only: its value is the sender's (and may be a caller's words).
        log.info("ingress.voice.bad_request", error=error.code, field=error.field)
        return HTTPException(status.HTTP_400_BAD_REQUEST, error.detail())

    # -- handlers: each returns the outcome label ----------------------------------------

    async def _call_progressing(self, call: CallData) -> str:
        call_id = call.id
        record = await self._resolver.record(call_id, call.customer)
        await self._publish(
            MessageKind.CALL_STARTED, call_id, record.conversation_id, f"{call_id}:progressing"
        )
        return "call_started"

    async def _call_hangup(self, call: CallData) -> str:
        call_id = call.id
        record = await self._resolver.record(call_id, call.customer)
        await self._registry.mark_ended(call_id)
        await self._publish(
            MessageKind.CALL_ENDED, call_id, record.conversation_id, f"{call_id}:hangup"
        )
        return "call_ended"

    async def _transcript(self, transcript: SpeechData) -> str:
        text = (transcript.message or "").strip()
        if transcript.direction != "in" or not text:
            return "ignored"  # our own speech ("out"), or silence
        call_id = await self._resolver.call_of_transcribe(transcript.transcribe_id)
        record = await self._resolver.record(call_id)
        if record.ended:
            return "call_over"
        await self._publish(
            MessageKind.TEXT,
            call_id,
            record.conversation_id,
            f"transcript:{transcript.id}",
            text[:MAX_TRANSCRIPT],
        )
        return "turn"

    async def _speech(self, speech: SpeechData) -> str:
        if (speech.direction or "in") != "in":
            return "ignored"
        call_id = await self._resolver.call_of_transcribe(speech.transcribe_id)
        record = await self._resolver.record(call_id)
        if record.ended:
            return "call_over"
        if not await self._registry.throttle(f"barge:{call_id}", BARGE_IN_WINDOW_MS):
            return "throttled"
        await self._publish(
            MessageKind.PARTIAL_TRANSCRIPT,
            call_id,
            record.conversation_id,
            f"speech:{speech.id}",
            (speech.message or "")[:MAX_TRANSCRIPT],
        )
        return "barge_in"

    async def _transcribe(self, transcribe: SessionData) -> str:
        if transcribe.reference_type == "call" and transcribe.reference_id:
            await self._registry.map_transcribe(transcribe.id, transcribe.reference_id)
        return "mapped"

    async def _speaking(self, speaking: SessionData) -> str:
        # Egress records the session it created; the events only tell us it is live.
        return "noted"

    async def _publish(
        self,
        kind: MessageKind,
        call_id: str,
        conversation_id: str,
        provider_message_id: str,
        text: str = "",
    ) -> None:
        await self._publisher.publish(
            kind=kind,
            provider_message_id=provider_message_id,
            address=call_id,
            conversation_id=conversation_id,
            text=text,
        )


def _ok(outcome: str) -> JSONResponse:
    return JSONResponse({"status": outcome})
