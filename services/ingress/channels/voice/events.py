"""`POST /v1/voipbin/events`: VoIPBin's customer event webhook (providers.md §1.5).

Each request is `{"type": ..., "data": {...}}`, signed `X-VoIPBIN-Signature: sha256=<hex>`
over the raw body. VoIPBin sends each event from its own goroutine (no ordering) and retries
up to 3 times on connection errors and 5xx, so this endpoint:
- checks the signature first (401, nothing published, when it is wrong or missing);
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

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from redis.exceptions import RedisError

from services.common.ops import OpsEmitter
from services.common.voipbin import (
    EVENTS_PATH,
    SIGNATURE_HEADER,
    VoipbinError,
    VoipbinSettings,
    VoipbinUnreachable,
    signature_is_valid,
)
from services.ingress.channels.voice.callers import CallResolver, UnknownCall
from services.ingress.publisher import InboundPublisher, PublishFailed
from shared.contracts import Channel, InboundMessage, Lifecycle, MessageKind
from shared.logs import get_logger
from shared.tracing import new_trace

log = get_logger("ingress.voice")

VOICE_EVENTS = Counter("switchboard_voipbin_events_total", "VoIPBin events", ["type", "outcome"])

BARGE_IN_WINDOW_MS = 1000
"""Speech events come several per second while someone talks; one stop signal is enough."""
MAX_TRANSCRIPT = 8000

Handler = Callable[[dict[str, Any]], Awaitable[str]]


def dedupe_key(event_type: str, data: dict[str, Any]) -> str:
    """What makes two deliveries the same event: type, resource id, and its state."""
    version = data.get("status") or data.get("tm_update") or ""
    return f"{event_type}:{data.get('id', '')}:{version}"


class VoipbinEvents:
    """The event webhook: verify, dedupe, translate into inbound messages."""

    def __init__(
        self,
        *,
        settings: VoipbinSettings,
        resolver: CallResolver,
        publisher: InboundPublisher,
        ops: OpsEmitter,
    ) -> None:
        self._secret = settings.voipbin_webhook_secret.get_secret_value()
        self._allow_unsigned = settings.voipbin_allow_unsigned
        self._resolver = resolver
        self._registry = resolver.registry
        self._publisher = publisher
        self._ops = ops
        self._handlers: dict[str, Handler] = {
            "call_progressing": self._call_progressing,
            "call_hangup": self._call_hangup,
            "transcript_created": self._transcript,
            "transcribe_speech_started": self._speech,
            "transcribe_speech_interim": self._speech,
            "transcribe_created": self._transcribe,
            "transcribe_progressing": self._transcribe,
            "speaking_started": self._speaking,
            "speaking_stopped": self._speaking,
        }

    def router(self) -> APIRouter:
        router = APIRouter(tags=["voice"])
        router.add_api_route(EVENTS_PATH, self.receive, methods=["POST", "PUT"])
        return router

    async def receive(self, request: Request) -> JSONResponse:
        """One webhook delivery."""
        body = await request.body()
        await self._verify(body, request.headers.get(SIGNATURE_HEADER))
        event_type, data = self._parse(body)
        handler = self._handlers.get(event_type)
        if handler is None:
            VOICE_EVENTS.labels("other", "ignored").inc()
            return _ok("ignored")
        key = dedupe_key(event_type, data)
        try:
            if await self._registry.seen_event(key):
                VOICE_EVENTS.labels(event_type, "duplicate").inc()
                return _ok("duplicate")
            outcome = await handler(data)
            await self._registry.mark_event(key)
        except UnknownCall as exc:
            VOICE_EVENTS.labels(event_type, "unknown_call").inc()
            await self._ops.emit(Lifecycle.REJECTED, channel=Channel.VOICE, reason="unknown_call")
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
            await self._ops.emit(Lifecycle.REJECTED, channel=Channel.VOICE, reason="bad_signature")
            log.warning("ingress.voice.bad_signature", signed=signature is not None)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid X-VoIPBIN-Signature")

    @staticmethod
    def _parse(body: bytes) -> tuple[str, dict[str, Any]]:
        try:
            payload = json.loads(body)
        except ValueError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not JSON") from None
        if not isinstance(payload, dict):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, 'expected {"type", "data"}')
        event_type, data = payload.get("type"), payload.get("data")
        if not isinstance(event_type, str) or not isinstance(data, dict):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, 'expected {"type", "data"}')
        return event_type, data

    # -- handlers: each returns the outcome label ----------------------------------------

    async def _call_progressing(self, call: dict[str, Any]) -> str:
        call_id = _required(call, "id")
        record = await self._resolver.record(call_id, call)
        await self._publish(
            MessageKind.CALL_STARTED, call_id, record.conversation_id, f"{call_id}:progressing"
        )
        return "call_started"

    async def _call_hangup(self, call: dict[str, Any]) -> str:
        call_id = _required(call, "id")
        record = await self._resolver.record(call_id, call)
        await self._registry.mark_ended(call_id)
        await self._publish(
            MessageKind.CALL_ENDED, call_id, record.conversation_id, f"{call_id}:hangup"
        )
        return "call_ended"

    async def _transcript(self, transcript: dict[str, Any]) -> str:
        text = str(transcript.get("message") or "").strip()
        if transcript.get("direction") != "in" or not text:
            return "ignored"  # our own speech ("out"), or silence
        call_id = await self._resolver.call_of_transcribe(_required(transcript, "transcribe_id"))
        record = await self._resolver.record(call_id)
        if record.ended:
            return "call_over"
        transcript_id = _required(transcript, "id")
        await self._publish(
            MessageKind.TEXT,
            call_id,
            record.conversation_id,
            f"transcript:{transcript_id}",
            text[:MAX_TRANSCRIPT],
        )
        return "turn"

    async def _speech(self, speech: dict[str, Any]) -> str:
        if speech.get("direction", "in") != "in":
            return "ignored"
        call_id = await self._resolver.call_of_transcribe(_required(speech, "transcribe_id"))
        record = await self._resolver.record(call_id)
        if record.ended:
            return "call_over"
        if not await self._registry.throttle(f"barge:{call_id}", BARGE_IN_WINDOW_MS):
            return "throttled"
        await self._publish(
            MessageKind.PARTIAL_TRANSCRIPT,
            call_id,
            record.conversation_id,
            f"speech:{_required(speech, 'id')}",
            str(speech.get("message") or "")[:MAX_TRANSCRIPT],
        )
        return "barge_in"

    async def _transcribe(self, transcribe: dict[str, Any]) -> str:
        if transcribe.get("reference_type") == "call" and transcribe.get("reference_id"):
            await self._registry.map_transcribe(
                _required(transcribe, "id"), str(transcribe["reference_id"])
            )
        return "mapped"

    async def _speaking(self, speaking: dict[str, Any]) -> str:
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
        message = InboundMessage(
            channel=Channel.VOICE,
            kind=kind,
            provider_message_id=provider_message_id,
            address=call_id,
            conversation_id=conversation_id,
            text=text,
            trace=new_trace(),
        )
        await self._ops.emit(
            Lifecycle.RECEIVED,
            channel=Channel.VOICE,
            conversation_id=conversation_id,
            message_id=provider_message_id,
            traceparent=message.trace.traceparent if message.trace else None,
        )
        await self._publisher.publish(message)


def _required(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not value:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"data.{field} is required")
    return str(value)


def _ok(outcome: str) -> JSONResponse:
    return JSONResponse({"status": outcome})
