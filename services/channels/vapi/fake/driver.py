"""The call driver: one VAPI call played against a server URL and a custom LLM.

1. ``assistant-request`` to the phone number's server (skipped for an outbound call created
   by ``POST /call``, which names its assistant), answered within 7.5 s or the call fails;
2. ``status-update`` ``in-progress``; the assistant's ``firstMessage`` is heard;
3. per caller line: the line joins the OpenAI ``messages``, the custom LLM is asked, its SSE
   read strictly (:mod:`.stream`); what was heard (cut at a barge-in, then ``user-interrupted``)
   joins ``messages`` as the assistant's turn (the model's raw output instead when
   ``modelOutputInMessagesEnabled`` is true); a failed answer ends the call with its
   ``pipeline-error-custom-llm-*`` reason; the tools ``endCall``/``transferCall`` end it;
4. control URL actions arrive any time: ``say`` is heard and joins ``messages``,
   ``add-message`` joins them, ``end-call`` (or ``transfer``) ends the call at once, even
   mid-stream; after the last line the driver waits ``linger_s`` for them, then the caller
   hangs up;
5. ``status-update`` ``ended`` and ``end-of-call-report``.
Server messages are sent only when the assistant's ``serverMessages`` (or VAPI's default
list) has their type.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from services.channels.vapi.fake import target as targets
from services.channels.vapi.fake.calls import CallType, control_auth_of, new_call
from services.channels.vapi.fake.config import DEFAULT_SERVER_MESSAGES
from services.channels.vapi.fake.live import LiveCall
from services.channels.vapi.fake.messages import artifact, envelope, post_message
from services.channels.vapi.fake.resolve import Resolution, effective, first_message, llm_body
from services.channels.vapi.fake.resolve import resolve_answer as resolve
from services.channels.vapi.fake.result import CallResult, Line, Turn
from services.channels.vapi.fake.state import FakeVapiState
from services.channels.vapi.fake.stream import StreamOutcome, read_answer
from services.channels.vapi.fake.target import CallTarget, Endpoint

POLL_S = 0.02


class CallDriver:
    """Plays one call; :meth:`run` returns the :class:`CallResult` (also kept in the state)."""

    def __init__(
        self,
        state: FakeVapiState,
        target: CallTarget,
        http: httpx.AsyncClient,
        *,
        lines: Sequence[str | Line],
        number: str | None = None,
        call_type: CallType = "inboundPhoneCall",
        interrupt_after_chars: int | None = None,
        linger_s: float = 1.0,
        speech_updates: bool = False,
        existing_call_id: str | None = None,
    ) -> None:
        self.state, self.target, self.http = state, target, http
        self.lines = [line if isinstance(line, Line) else Line(line) for line in lines]
        self.interrupt_after = interrupt_after_chars
        self.linger_s, self.speech_updates = linger_s, speech_updates
        self.number = targets.phone_number(state, target) if call_type != "webCall" else None
        number_id = (self.number or {}).get("id")
        if existing_call_id:
            self.call = state.get("call", existing_call_id)
            self.call["status"] = "ringing"
            self.number = state.find("phone-number", str(self.call.get("phoneNumberId", "")))
            number = (self.call.get("customer") or {}).get("number")
        else:
            self.call = new_call(
                state, call_type, number=number, phone_number_id=number_id, status="ringing"
            )
        live = state.live(self.call["id"])
        self.live: LiveCall = live or state.start_live(self.call, False)
        self.result = CallResult(self.call["id"], str(self.call["type"]), number)
        self.assistant: dict[str, Any] = {}
        self.events: Endpoint | None = None
        self.history: list[dict[str, str]] = []
        self.started = time.time()

    # -- the call -------------------------------------------------------------------------------

    async def run(self) -> CallResult:
        request_to = targets.request_endpoint(self.state, self.target, self.number)
        self.events = request_to  # until the assistant names its own server
        if await self._choose_assistant(request_to):
            self.events = targets.events_endpoint(
                self.state, self.target, self.assistant, request_to
            )
            self.live.control_auth = self.live.control_auth or control_auth_of(self.assistant)
            await self._set_status("in-progress")
            if greeting := first_message(self.assistant):
                self._heard(greeting)
                self.result.greeting = greeting
            for index, line in enumerate(self.lines):
                self._apply_actions()
                if self.live.ended_reason or not await self._turn(index, line):
                    break
            await self._linger()
        reason = self.live.ended_reason or "customer-ended-call"
        self.live.end(reason)
        await self._finish(self.live.ended_reason or reason)
        return self.result

    async def _choose_assistant(self, request_to: Endpoint | None) -> bool:
        if "assistantId" in self.call or "assistant" in self.call:  # outbound: named by POST /call
            stored = self.state.find("assistant", str(self.call.get("assistantId", "")))
            chosen = stored or self.call.get("assistant") or {}
            self.assistant = effective(chosen, self.call.get("assistantOverrides"))
            return True
        if request_to is None:
            self.live.end("call-start-error-neither-assistant-nor-server-set")
            return False
        payload = envelope("assistant-request", self.call, phoneNumber=self._number_masked())
        sent = await post_message(
            self.http,
            request_to.url,
            payload,
            request_to.auth,
            timeout_s=self.target.assistant_request_timeout_s,
            extra_headers=request_to.headers,
        )
        self.result.messages.append(sent)
        self.result.assistant_answer = sent.response
        found: Resolution = resolve(self.state, sent)
        if found.spoken:
            self._heard(found.spoken)
            self.result.greeting = found.spoken
        if found.assistant is None:
            self.live.end(found.ended_reason or "assistant-request-returned-no-assistant")
            return False
        self.assistant = found.assistant
        return True

    async def _turn(self, index: int, line: Line) -> bool:
        """One caller line and its answer; False when the call ends with it."""
        turn = Turn(index=index, said=line.text, turn_id=str(uuid.uuid4()))
        self.result.turns.append(turn)
        if self.speech_updates:
            await self._send("speech-update", status="started", role="user", turn=index)
        self._entry("user", line.text)
        await self._send_transcript("user", line.text)
        base = targets.llm_base(self.target, self.assistant)
        if not base:
            self.live.end("assistant-not-valid")
            turn.error = "the assistant's model is not a custom LLM with a url"
            return False
        turn.request = llm_body(self.assistant, self.history, self.call, self._number_masked())
        outcome = await self._ask(base, turn.request, line)
        turn.take(outcome)
        if outcome.ended_reason:
            self.live.end(outcome.ended_reason)
            return False
        spoken = outcome.model_output if self._model_output_in_messages() else outcome.heard
        if outcome.heard:
            self.result.transcript.append({"role": "assistant", "content": outcome.heard})
        if spoken:
            self.history.append({"role": "assistant", "content": spoken})
        if outcome.interrupted:
            await self._send("user-interrupted", turnId=turn.turn_id)
        await self._send_transcript("assistant", outcome.heard)
        await self._send_update()
        for call in outcome.tool_calls:
            name = call["function"]["name"]
            if name in ("endCall", "transferCall"):
                ended = "assistant-ended-call" if name == "endCall" else "assistant-forwarded-call"
                self.live.end(ended)
        return not self.live.ended_reason

    async def _ask(self, base: str, body: dict[str, Any], line: Line) -> StreamOutcome:
        """The custom-LLM request, abandoned (stream closed) if the call ends meanwhile."""
        headers = dict(self._model().get("headers") or {})
        headers.pop("Authorization", None)  # model.headers cannot override the credential
        if (key := targets.llm_key(self.state, self.target, self.assistant)) is not None:
            headers["Authorization"] = f"Bearer {key}"
        outcome = StreamOutcome()
        interrupt = line.interrupt_after_chars
        reading = asyncio.create_task(
            read_answer(
                self.http,
                base.rstrip("/") + "/chat/completions",
                body,
                headers,
                timeout_s=float(self._model().get("timeoutSeconds") or self.target.llm_timeout_s),
                turn_timeout_s=self.target.turn_timeout_s,
                interrupt_after_chars=interrupt if interrupt is not None else self.interrupt_after,
                outcome=outcome,
            )
        )
        self.live.set_streaming(True)
        try:
            while not reading.done():
                if self.live.ended_reason:
                    reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reading
                    return outcome
                await asyncio.wait({reading}, timeout=POLL_S)
            return reading.result()
        finally:
            self.live.set_streaming(False)

    async def _linger(self) -> None:
        deadline = time.monotonic() + self.linger_s
        while not self.live.ended_reason and time.monotonic() < deadline:
            self._apply_actions()
            await asyncio.sleep(POLL_S)
        self._apply_actions()

    async def _finish(self, reason: str) -> None:
        self.result.ended_reason = reason
        await self._set_status("ended", endedReason=reason)
        report = artifact(self.result.transcript, self.started)
        analysis = {"summary": "", "successEvaluation": None}
        await self._send(
            "end-of-call-report",
            endedReason=reason,
            artifact=report,
            analysis=analysis,
            durationSeconds=round(time.time() - self.started, 2),
            cost=0,
        )
        self.state.store_result(self.call["id"], self.result.to_dict())

    # -- helpers --------------------------------------------------------------------------------

    def _model(self) -> dict[str, Any]:
        model = self.assistant.get("model")
        return model if isinstance(model, dict) else {}

    def _model_output_in_messages(self) -> bool:
        return self.assistant.get("modelOutputInMessagesEnabled") is True

    def _number_masked(self) -> dict[str, Any] | None:
        return self.state.get("phone-number", self.number["id"]) if self.number else None

    def _entry(self, role: str, content: str) -> None:
        self.history.append({"role": role, "content": content})
        self.result.transcript.append({"role": role, "content": content})

    def _heard(self, text: str) -> None:
        """The assistant said ``text`` outside an LLM turn (greeting, control ``say``)."""
        self._entry("assistant", text)

    def _apply_actions(self) -> None:
        for action in self.live.take_actions():
            if action["type"] == "say":
                self._heard(action["content"])
                self.result.said_by_control.append(action["content"])
            elif action["type"] == "add-message":
                message = action["message"]
                self._entry(str(message.get("role", "system")), str(message.get("content", "")))

    async def _set_status(self, status: str, **fields: Any) -> None:
        self.call["status"] = status
        self.call.update(fields)
        self.state.set_call(self.call["id"], status=status, **fields)
        await self._send("status-update", status=status, **fields)

    async def _send_transcript(self, role: str, text: str) -> None:
        if not text:
            return
        for kind in ("transcript", 'transcript[transcriptType="final"]'):
            if kind in self._subscribed():
                await self._send(kind, role=role, transcriptType="final", transcript=text)

    async def _send_update(self) -> None:
        if "conversation-update" in self._subscribed():
            openai = [dict(entry) for entry in self.history]
            messages = artifact(self.result.transcript, self.started)["messages"]
            await self._send(
                "conversation-update", messages=messages, messagesOpenAIFormatted=openai
            )

    def _subscribed(self) -> tuple[str, ...] | list[str]:
        chosen = self.assistant.get("serverMessages")
        return chosen if isinstance(chosen, list) else DEFAULT_SERVER_MESSAGES

    async def _send(self, message_type: str, **fields: Any) -> None:
        if self.events is None or message_type not in self._subscribed():
            return
        payload = envelope(message_type, self.call, **fields)
        sent = await post_message(
            self.http,
            self.events.url,
            payload,
            self.events.auth,
            timeout_s=self.events.timeout_s,
            extra_headers=self.events.headers,
        )
        self.result.messages.append(sent)
