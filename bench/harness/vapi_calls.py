"""One VAPI call played by the bench, as VAPI plays it, with every instant recorded.

The bench is VAPI's side here: it posts the server-URL messages (signed as
`VAPI_AUTH_MODE` says, with `services.channels.vapi.auth.sign`, the signer the fake VAPI
uses) and the custom-LLM requests itself, over one kept-alive aiohttp session, with bodies
and headers built before the clock starts. The messages and the LLM request bodies are built
by the fake VAPI's own builders (`envelope`, `llm_body`: `model`, `messages` with the growing
history, `stream: true`, the `call` with `customer.number`, `phoneNumber`, `metadata`).

A call: `assistant-request` (timed: send → last byte of the answer; the answer's
`firstMessage` is the brain's greeting or the fallback); then per caller line a pause (the
greeting or the last answer playing, the caller speaking; optionally VAPI's `speech-update`
when the caller starts), and a custom-LLM request whose SSE is read to `[DONE]` (t0 just
before the send, t1 when the first chunk with content is read), the answer joining
`messages` as the assistant's turn (what was spoken: `<flush />` removed, as with
`modelOutputInMessagesEnabled: false`); at the end `end-of-call-report`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.harness.vapi_stack import LLM_KEY, VapiStack
from services.channels.vapi.auth import sign
from services.channels.vapi.fake.messages import artifact, envelope
from services.channels.vapi.fake.resolve import llm_body
from services.channels.vapi.fake.stream import spoken

OUR_NUMBER = "+15005550006"
PHONE_NUMBER_ID = str(uuid.uuid4())
DEAD_CONTROL_BASE = "http://127.0.0.1:9/control"
"""Nothing listens there: a control message egress sent would fail and be logged."""


@dataclass
class GreetingRecord:
    """One `assistant-request` and its answer."""

    call_id: str
    t0: float
    """`time.monotonic()` just before the request was sent."""
    t0_wall: float
    elapsed_ms: float
    status: int | None
    greeting: str = ""
    fallback: bool = False
    error: str = ""


@dataclass
class LlmRecord:
    """One custom-LLM request and its streamed answer."""

    call_id: str
    message_id: str
    """`<call id>:turn:<user messages>`: the provider message id ingress gives the turn."""
    text: str
    t0: float
    """`time.monotonic()` just before the request was sent (body and headers ready)."""
    t0_wall: float
    status: int | None = None
    t_first: float | None = None
    """When the first SSE chunk with non-empty `delta.content` was read."""
    first_content: str = ""
    t_done: float | None = None
    """When `data: [DONE]` was read."""
    content: str = ""
    chunks: int = 0
    filler: bool = False
    apology: bool = False
    error: str = ""

    @property
    def answered(self) -> bool:
        """The stream ended with `[DONE]` and its first content was the answer itself."""
        return (
            self.t_done is not None
            and self.t_first is not None
            and not self.filler
            and not self.apology
            and self.text in self.content
        )

    @property
    def first_chunk_ms(self) -> float:
        assert self.t_first is not None
        return (self.t_first - self.t0) * 1000


@dataclass
class VapiCallOutcome:
    call_id: str
    greeting: GreetingRecord
    turns: list[LlmRecord] = field(default_factory=list)
    speech_updates: list[int | None] = field(default_factory=list)
    """HTTP status of each `speech-update` posted."""
    ended_status: int | None = None


def new_call(number: str) -> dict[str, Any]:
    """VAPI's `call` object of an inbound phone call from `number`."""
    call_id = str(uuid.uuid4())
    return {
        "id": call_id,
        "orgId": "bench-org",
        "type": "inboundPhoneCall",
        "status": "in-progress",
        "phoneNumberId": PHONE_NUMBER_ID,
        "phoneCallProvider": "vapi",
        "phoneCallTransport": "pstn",
        "customer": {"number": number},
        "monitor": {"controlUrl": f"{DEAD_CONTROL_BASE}/{call_id}"},
    }


def new_call_number(index: int) -> str:
    """A distinct, possible US number per call (a new caller, a new conversation)."""
    return f"+1415{7_550_000 + index:07d}"


def new_tag() -> str:
    return uuid.uuid4().hex[:6]


class VapiCaller:
    """Plays calls against one stack (one HTTP session for all of them)."""

    def __init__(self, stack: VapiStack, http: aiohttp.ClientSession, tag: str) -> None:
        self.stack = stack
        self.http = http
        self.tag = tag
        self.settings = stack.settings()
        self._llm_url = stack.llm_base + "/chat/completions"
        self._rng = random.Random(tag)  # the pauses of simulated callers

    async def call(
        self,
        number: str,
        index: int,
        turns: int,
        think_s: tuple[float, float],
        speech_lead_s: float | None = None,
    ) -> VapiCallOutcome:
        """One whole call. Before each line the caller pauses a random time within `think_s`
        (the greeting or the last answer playing, the caller speaking), so turns do not fall
        into step with the services' poll loops. With `speech_lead_s`, VAPI's `speech-update`
        (user, started) is posted that long before each request, as VAPI does when the
        caller starts speaking (its default `serverMessages` include it; ingress turns it
        into a barge-in signal for the brain)."""
        call = new_call(number)
        greeting, assistant = await self.assistant_request(call)
        outcome = VapiCallOutcome(call["id"], greeting)
        if assistant is None:
            return outcome
        history: list[dict[str, str]] = []
        if greeting.greeting:
            history.append({"role": "assistant", "content": greeting.greeting})
        for turn in range(turns):
            pause = self._rng.uniform(*think_s)
            if speech_lead_s is None:
                await asyncio.sleep(pause)
            else:
                await asyncio.sleep(max(0.0, pause - speech_lead_s))
                outcome.speech_updates.append(await self.speech_started(call, turn))
                await asyncio.sleep(min(pause, speech_lead_s))
            text = (
                f"Caller {index} turn {turn} of {self.tag} asks where the parcel is now."
                " It was sent last week."
            )
            history.append({"role": "user", "content": text})
            record = await self.ask(call, assistant, history, text)
            outcome.turns.append(record)
            if record.content:
                history.append({"role": "assistant", "content": spoken(record.content).strip()})
        outcome.ended_status = await self.end(call, history)
        return outcome

    async def assistant_request(
        self, call: dict[str, Any]
    ) -> tuple[GreetingRecord, dict[str, Any] | None]:
        """`assistant-request`, timed from send to the last byte of the answer."""
        number = {"id": PHONE_NUMBER_ID, "number": OUR_NUMBER}
        raw, headers = self._signed(envelope("assistant-request", call, phoneNumber=number))
        wall, started = time.time(), time.monotonic()
        try:
            async with self.http.post(self.stack.events_url, data=raw, headers=headers) as response:
                body = await response.read()
                elapsed_ms = (time.monotonic() - started) * 1000
                status = response.status
        except aiohttp.ClientError as exc:
            elapsed_ms = (time.monotonic() - started) * 1000
            failed = GreetingRecord(call["id"], started, wall, elapsed_ms, None)
            failed.error = type(exc).__name__
            return failed, None
        record = GreetingRecord(call["id"], started, wall, elapsed_ms, status)
        try:
            assistant = json.loads(body)["assistant"]
            record.greeting = str(assistant["firstMessage"])
        except (ValueError, KeyError, TypeError):
            record.error = f"HTTP {status}: no assistant in the answer"
            return record, None
        record.fallback = record.greeting == self.settings.fallback_greeting
        return record, assistant

    async def ask(
        self,
        call: dict[str, Any],
        assistant: dict[str, Any],
        history: list[dict[str, str]],
        text: str,
    ) -> LlmRecord:
        """One custom-LLM request, its SSE read to `[DONE]`."""
        number = {"id": PHONE_NUMBER_ID, "number": OUR_NUMBER}
        body = llm_body(assistant, history, call, number)
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Authorization": f"Bearer {LLM_KEY}", "Content-Type": "application/json"}
        users = sum(1 for message in history if message["role"] == "user")
        record = LlmRecord(call["id"], f"{call['id']}:turn:{users}", text, 0.0, 0.0)
        record.t0_wall, record.t0 = time.time(), time.monotonic()
        try:
            async with self.http.post(self._llm_url, data=raw, headers=headers) as response:
                record.status = response.status
                if response.status != 200:
                    record.error = f"HTTP {response.status}"
                    await response.read()
                    return record
                await self._read_stream(response, record)
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.error = type(exc).__name__
        return record

    async def _read_stream(self, response: aiohttp.ClientResponse, record: LlmRecord) -> None:
        async for raw_line in response.content:
            at = time.monotonic()
            line = raw_line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                record.t_done = at
                return
            chunk = json.loads(data)
            record.chunks += 1
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if not content:
                    continue
                if record.t_first is None:
                    record.t_first, record.first_content = at, content
                    record.filler = content.startswith(self.settings.filler_text)
                if self.settings.apology_text in content:
                    record.apology = True
                record.content += content

    async def speech_started(self, call: dict[str, Any], turn: int) -> int | None:
        """`speech-update` (user, started); its HTTP status."""
        payload = envelope("speech-update", call, status="started", role="user", turn=turn)
        return await self._post(payload)

    async def end(self, call: dict[str, Any], history: list[dict[str, str]]) -> int | None:
        """`end-of-call-report` (one CALL_ENDED for the brain); its HTTP status."""
        report = artifact(history, time.time())
        payload = envelope(
            "end-of-call-report", call, endedReason="customer-ended-call", artifact=report
        )
        return await self._post(payload)

    async def _post(self, payload: dict[str, Any]) -> int | None:
        raw, headers = self._signed(payload)
        try:
            async with self.http.post(self.stack.events_url, data=raw, headers=headers) as response:
                await response.read()
                return response.status
        except aiohttp.ClientError:
            return None

    def _signed(self, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", **sign(self.settings, raw)}
        return raw, headers
