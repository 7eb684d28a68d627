"""`POST /v1/vapi/llm/chat/completions`: VAPI's custom LLM, answered by the brain
(providers.md §3.5, docs/vapi.md).

VAPI posts the call's history and waits for an OpenAI stream. The route:

1. checks `Authorization: Bearer <VAPI_LLM_KEY>` (401, nothing published);
2. reads the turn (`llm_turn.py`): the last user message, numbered by how many user
   messages there are, so a retried request is the same turn; the assistant message before
   it is what the caller heard of the previous answer (400 only without a call id or a
   user message);
3. registers this instance as the turn's holder (`vapi:stream:<turn id>`), then publishes
   the turn with reply mode STREAM (`correlation_id` = the turn id, `reply_to` = this
   instance);
4. streams each sentence egress hands it (`StreamPart`, in part order, the first copy of
   each) as it comes; a short filler when nothing came within `VAPI_FILLER_AFTER_MS`; the
   apology when the deadline passes, Kafka did not take the turn or anything fails. The
   stream always ends with `[DONE]`, never with a 5xx (VAPI would end the call);
5. a client hanging up mid-answer is a barge-in: a `partial_transcript` for the call stops
   the brain. The stream is released in every case.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Histogram

from services.channels.sdk.publish import ChannelPublisher, PublishFailed
from services.channels.vapi.callers import conversation_of
from services.channels.vapi.held import HeldStream
from services.channels.vapi.llm_turn import LlmTurn, TurnError, parse_turn, without_filler
from services.channels.vapi.profile import NAME
from services.channels.vapi.settings import LLM_BASE_PATH, VapiSettings
from services.channels.vapi.sse import Chunks, EventStream, Piece, answer_events
from services.channels.vapi.store import VapiCalls
from services.common.ops import OpsEmitter
from services.common.safe_json import UntrustedJsonError, loads_untrusted
from shared.contracts import Lifecycle, MessageKind, ReplyMode, ReplyModeKind
from shared.contracts.inbox import StreamPart, StreamStop
from shared.logs import get_logger

log = get_logger("ingress.vapi.llm")

LLM_REQUESTS = Counter(
    "switchboard_vapi_llm_requests_total", "Custom-LLM requests by outcome", ["outcome"]
)
FIRST_WORDS_SECONDS = Histogram(
    "switchboard_vapi_llm_first_words_seconds",
    "From a custom-LLM request to its first sentence (the filler not counted)",
)

COMPLETIONS_PATHS = (
    f"{LLM_BASE_PATH}/chat/completions",
    # VAPI's `url` is an OpenAI base URL, but one doc page shows it ending in the path.
    f"{LLM_BASE_PATH}/chat/completions/chat/completions",
)
FLUSH = " <flush />"
"""Makes VAPI hand what it has to text-to-speech at once (`voice.chunkPlan`)."""
HOLD_MARGIN_S = 2.0
"""The holder record outlives the deadline a little: late parts find it and are ignored,
instead of being reported as parts of a request nobody holds."""
MAX_ID_CHARS = 256


class VapiLlm:
    """The custom-LLM route, and the inbox handlers that feed its held requests."""

    def __init__(
        self,
        *,
        settings: VapiSettings,
        publisher: ChannelPublisher,
        calls: VapiCalls,
        identity: Any,
        ops: OpsEmitter,
        instance_id: str,
    ) -> None:
        """`identity`: the ingress `IdentityResolver` (a caller's number joins the phone
        realm); `instance_id`: this ingress instance, whose inbox egress writes to."""
        self._settings = settings
        self._publisher = publisher
        self._calls = calls
        self._identity = identity
        self._ops = ops
        self._instance_id = instance_id
        self._key = settings.llm_key.get_secret_value().encode()
        self._held: dict[str, set[HeldStream]] = {}

    def router(self) -> APIRouter:
        router = APIRouter(tags=["vapi"])
        for path in COMPLETIONS_PATHS:
            router.add_api_route(path, self.completions, methods=["POST"], response_model=None)
        return router

    async def run(self) -> None:
        """Nothing in the background: parts arrive through the inbox."""
        return None

    async def close(self) -> None:
        """Shutting down: every held request ends now, with the apology."""
        for streams in self._held.values():
            for stream in streams:
                stream.close()

    # -- inbox ----------------------------------------------------------------------------

    async def on_stream_part(self, entry: StreamPart) -> None:
        """A sentence of an answer this instance may hold (unknown ids are ignored)."""
        for stream in self._held.get(entry.correlation_id, ()):
            stream.add(entry)

    async def on_stream_stop(self, entry: StreamStop) -> None:
        """The brain stopped an answer this instance may hold (barge-in)."""
        for stream in self._held.get(entry.correlation_id, ()):
            stream.stop()

    # -- the route ------------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        """One custom-LLM request: SSE (or one JSON completion for `stream: false`)."""
        if not self._authorized(request.headers.get("authorization", "")):
            LLM_REQUESTS.labels("unauthorized").inc()
            await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason="vapi_llm_unauthorized")
            return _error(401, "unauthorized", "invalid or missing API key")
        try:
            turn = parse_turn(loads_untrusted(await request.body()))
        except (UntrustedJsonError, TurnError) as error:
            LLM_REQUESTS.labels("bad_request").inc()
            await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason=f"vapi_llm_{error.code}")
            log.info("ingress.vapi.llm.bad_request", error=error.code)
            return _error(400, error.code, error.message)
        started = asyncio.get_running_loop().time()
        chunks = Chunks(f"chatcmpl-{uuid.uuid4().hex}", turn.model, int(time.time()))
        stream = HeldStream(turn.message_id)
        pieces = self._answer(turn, stream, started)
        if not turn.stream:
            return await self._whole(chunks, pieces)
        return EventStream(answer_events(chunks, pieces), on_disconnect=stream.disconnect)

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        # Compared in constant time whatever the header holds.
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        return hmac.compare_digest(given, self._key) and bool(given)

    async def _whole(self, chunks: Chunks, pieces: AsyncIterator[Piece]) -> Response:
        texts = [piece.text async for piece in pieces if not piece.filler]
        return JSONResponse(chunks.completion("".join(texts).strip()))

    # -- the answer -----------------------------------------------------------------------

    async def _answer(
        self, turn: LlmTurn, stream: HeldStream, started: float
    ) -> AsyncIterator[Piece]:
        """What to speak, as it comes. Ends by itself: complete, stopped, disconnected, or
        with the apology (deadline, publish failure, any error)."""
        if not turn.text:
            LLM_REQUESTS.labels("empty").inc()  # nothing was said: nothing to answer
            return
        settings = self._settings
        loop = asyncio.get_running_loop()
        deadline = started + settings.stream_deadline_s
        filler_at = started + settings.filler_after_ms / 1000
        self._held.setdefault(stream.correlation_id, set()).add(stream)
        start = asyncio.create_task(self._start(turn, deadline))
        start.add_done_callback(lambda _: stream.poke())
        said_something = spoken = False
        outcome = "answered"
        try:
            while True:
                stream.settle()
                for part in stream.ready():
                    if part.text.strip():
                        if not spoken:
                            FIRST_WORDS_SECONDS.observe(loop.time() - started)
                        yield Piece(_joined(part.text, said_something))
                        said_something = spoken = True
                if stream.finished:
                    return
                if start.done():
                    start.result()  # raises what setting the turn up raised
                if stream.stopped:
                    outcome = "stopped"
                    return
                if stream.disconnected:
                    outcome = "disconnected"
                    await self._barge_in(turn, start, deadline)
                    return
                now = loop.time()
                if stream.closing or now >= deadline:
                    outcome = "shutdown" if stream.closing else "deadline"
                    yield Piece(_joined(settings.apology_text, said_something))
                    return
                if not said_something and now >= filler_at:
                    said_something = True
                    yield Piece(settings.filler_text + FLUSH, filler=True)
                    continue
                # Never past the deadline, even when the filler is set to come later.
                wake_at = deadline if said_something else min(deadline, filler_at)
                await stream.wait(wake_at - now)
        except PublishFailed:
            outcome = "publish_failed"
            yield Piece(_joined(settings.apology_text, said_something))
        except Exception as exc:
            outcome = "deadline" if isinstance(exc, TimeoutError) else "error"
            log.warning(
                "ingress.vapi.llm.failed", call_id=turn.call.call_id, error=type(exc).__name__
            )
            yield Piece(_joined(settings.apology_text, said_something))
        finally:
            await self._finish(turn, stream, start, outcome, started)

    async def _start(self, turn: LlmTurn, deadline: float) -> bool:
        """Resolve the conversation, hold the stream, publish the turn."""
        settings = self._settings
        async with asyncio.timeout_at(deadline):
            # Side by side: the caller is waiting, and neither needs the other's answer (a hold
            # left behind by a failed lookup expires with its TTL, as after a failed publish).
            looked_up, held = await asyncio.gather(
                conversation_of(self._identity, self._calls, turn.call),
                self._calls.hold_stream(
                    turn.message_id,
                    turn.call.call_id,
                    self._instance_id,
                    settings.stream_deadline_s + HOLD_MARGIN_S,
                ),
                return_exceptions=True,  # both finish; the first failure is raised below
            )
            for outcome in (looked_up, held):
                if isinstance(outcome, BaseException):
                    raise outcome
            conversation_id = str(looked_up)
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            await self._publisher.publish(
                provider_message_id=turn.message_id,
                address=turn.call.call_id,
                conversation_id=conversation_id,
                kind=MessageKind.TEXT,
                text=turn.text,
                heard=without_filler(turn.heard, settings.filler_text),
                reply=ReplyMode(
                    kind=ReplyModeKind.STREAM,
                    deadline_at=datetime.now(UTC) + timedelta(seconds=remaining),
                    correlation_id=turn.message_id,
                    reply_to=self._instance_id,
                ),
            )
        return True

    async def _barge_in(self, turn: LlmTurn, start: asyncio.Task[bool], deadline: float) -> None:
        """VAPI hung up mid-answer: tell the brain the caller is speaking, so it stops."""
        # A turn still being published is stopped all the same, once Kafka has it.
        await asyncio.wait({start}, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
        if not start.done() or start.cancelled() or start.exception() is not None:
            return  # the turn never reached the brain
        call_id = turn.call.call_id
        message_id = f"{call_id}:interrupt:{turn.message_id}"
        if len(message_id) > MAX_ID_CHARS:  # long call ids: still one id per turn
            digest = hashlib.sha256(turn.message_id.encode()).hexdigest()[:32]
            message_id = f"{call_id}:interrupt:{digest}"
        try:
            record = await self._calls.get(call_id)
            await self._publisher.publish(
                provider_message_id=message_id,
                address=call_id,
                conversation_id=record.conversation_id,
                kind=MessageKind.PARTIAL_TRANSCRIPT,
            )
        except Exception as exc:
            # The brain finishes an answer nobody hears; nothing else is lost.
            log.warning(
                "ingress.vapi.llm.barge_in_failed", call_id=call_id, error=type(exc).__name__
            )

    async def _finish(
        self,
        turn: LlmTurn,
        stream: HeldStream,
        start: asyncio.Task[bool],
        outcome: str,
        started: float,
    ) -> None:
        holders = self._held.get(stream.correlation_id)
        if holders is not None:
            holders.discard(stream)
            if not holders:
                del self._held[stream.correlation_id]
        if not start.done():
            start.cancel()
        await asyncio.wait({start})
        if not start.cancelled():
            start.exception()  # retrieved: handled above, or moot now
        # Control messages (end-call, say) wait for this; a newer stream of the call is
        # not ours to release (the store checks).
        try:
            await self._calls.release_stream(stream.correlation_id, turn.call.call_id)
        except Exception as exc:
            log.warning("ingress.vapi.llm.release_failed", error=type(exc).__name__)
        LLM_REQUESTS.labels(outcome).inc()
        ids: dict[str, Any] = {"channel": NAME, "message_id": turn.message_id}
        elapsed_ms = (asyncio.get_running_loop().time() - started) * 1000
        if outcome in ("deadline", "publish_failed", "error", "shutdown"):
            await self._ops.emit(
                Lifecycle.FAILED, reason=f"vapi_llm_{outcome}", duration_ms=elapsed_ms, **ids
            )
        elif outcome == "disconnected":
            await self._ops.emit(Lifecycle.INTERRUPTED, reason="vapi_llm_disconnected", **ids)
        log.info("ingress.vapi.llm.done", call_id=turn.call.call_id, outcome=outcome)


def _joined(text: str, after_something: bool) -> str:
    """Sentences are streamed as they are; VAPI concatenates them, so keep them apart."""
    text = text.strip()
    return f" {text}" if after_something else text


def _error(status: int, code: str, message: str) -> JSONResponse:
    """An OpenAI-style error body (never SSE: VAPI reads it as a failed request)."""
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        status_code=status,
        headers=headers,
    )
