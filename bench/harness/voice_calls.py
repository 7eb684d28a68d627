"""One caller on the line, driven as VoIPBin drives a call, with every instant recorded.

Events are posted by the bench itself (one pooled aiohttp session, signed with the fake's
webhook secret exactly as `services.channels.voipbin.fake.deliver_event` signs them) instead of
through the fake's `emit`, which opens a new HTTP client per event: the transcript's t0 is
then the instant just before the POST of a request whose body and signature are ready.
`fetch` requests go the same way, as VoIPBin's Go client sends them (JSON body
`{"activeflow_id", "reference_id"}`, kept-alive connection), timed on the client from
send to the last byte of the answer.

A call: `call_progressing` (ingress → CALL_STARTED → brain → OPEN → egress opens the
transcribe and speaking sessions), the flow's first `fetch` (held until the brain's
greeting arrives through egress and ingress's inbox), then per turn a `transcript_created`
(direction `in`) and the first `say` the fake records for the call after it, then a hold
`fetch` (a later round without digits: answered at once), and at the end `call_hangup`
(egress stops the sessions).
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

from bench.harness.voice_stack import VoiceStack
from services.channels.voipbin.fake import (
    SIGNATURE_HEADER,
    go_json,
    sign_body,
    transcript_data,
    validate_action_array,
)
from services.ingress.config import IngressSettings

FALLBACK_TEXT = str(IngressSettings.model_fields["voipbin_fallback_text"].default)
SAY_TIMEOUT_S = 30.0
SESSION_TIMEOUT_S = 20.0
CLOSE_TIMEOUT_S = 10.0


@dataclass
class TurnRecord:
    """One caller utterance and what the fake VoIPBin saw of its answer."""

    call_id: str
    message_id: str
    """`transcript:<id>`: the brain's ops events name the turn by it."""
    text: str
    t0: float
    """`time.monotonic()` just before the POST of the signed `transcript_created`."""
    t0_wall: float
    t_ack: float | None = None
    status: int | None = None
    t_say: float | None = None
    """The fake's `at` of the first `say` for the call after t0."""
    said: str = ""

    @property
    def answered(self) -> bool:
        """The first `say` after the transcript was the answer to it."""
        return self.t_say is not None and self.text in self.said

    @property
    def e2e_ms(self) -> float:
        assert self.t_say is not None
        return (self.t_say - self.t0) * 1000


@dataclass
class FetchRecord:
    """One `fetch` request: what kind, how long, and what it answered."""

    kind: str
    """`greeting` (the call's first fetch) or `hold` (a later round without digits)."""
    call_id: str
    elapsed_ms: float
    status: int | None
    actions: list[Any] | None
    errors: list[str] = field(default_factory=list)

    @property
    def first_talk(self) -> str:
        for action in self.actions or []:
            if action.get("type") == "talk":
                return str(action.get("option", {}).get("text", ""))
        return ""

    @property
    def fallback(self) -> bool:
        return self.kind == "greeting" and self.first_talk == FALLBACK_TEXT


@dataclass
class CallOutcome:
    """What one call recorded, and whether its sessions opened and closed."""

    call_id: str
    fetches: list[FetchRecord] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    opened: bool = False
    closed: bool = False


class Caller:
    """Posts events and fetches for calls of one stack (one HTTP session for all of them)."""

    def __init__(self, stack: VoiceStack, http: aiohttp.ClientSession, tag: str) -> None:
        self.stack = stack
        self.fake = stack.fake
        self.http = http
        self.tag = tag
        self._secret = stack.webhook_secret
        self._customer_id = self.fake.state.config.customer_id
        self._rng = random.Random(tag)  # the pauses of a simulated caller

    async def call(
        self, number: str, index: int, turns: int, think_s: tuple[float, float]
    ) -> CallOutcome:
        """One whole call: answer, greeting fetch, `turns` utterances with a hold fetch after
        each, hangup. Between an answer and the next utterance the caller pauses a random
        time within `think_s`, so turns do not fall into step with the services' poll loops."""
        call, greeting, transcribe_id = await self.answer(number)
        outcome = CallOutcome(call["id"], [greeting], opened=transcribe_id is not None)
        try:
            if transcribe_id is None:
                return outcome
            for turn in range(turns):
                text = f"Caller {index} turn {turn} of {self.tag} asks where the parcel is now"
                outcome.turns.append(await self.turn(call["id"], transcribe_id, text))
                await asyncio.sleep(self._rng.uniform(*think_s))  # listening to the answer
                outcome.fetches.append(await self.fetch(call, "hold", f"n={turn + 1}&digits="))
            outcome.closed = await self.hang_up(call["id"])
        finally:
            self.stack.watch.forget(call["id"])
        return outcome

    async def answer(self, number: str) -> tuple[dict[str, Any], FetchRecord, str | None]:
        """A call from `number` is answered: `call_progressing`, the greeting fetch, and the
        transcribe session egress opens (None if it never does)."""
        call = self.fake.add_call(source=number, status="progressing")
        await self._post("call_progressing", call)
        greeting = await self.fetch(call, "greeting")
        return call, greeting, await self._transcribe_id(call["id"])

    async def turn(self, call_id: str, transcribe_id: str, text: str) -> TurnRecord:
        """Post one final transcript; wait for the first `say` the fake records after it."""
        data = transcript_data(transcribe_id, text, customer_id=self._customer_id)
        body, headers = self._signed("transcript_created", data)
        event = self.stack.watch.event(call_id)
        record = TurnRecord(call_id, f"transcript:{data['id']}", text, 0.0, 0.0)
        record.t0_wall, record.t0 = time.time(), time.monotonic()
        async with self.http.post(self.stack.events_url, data=body, headers=headers) as response:
            await response.read()
            record.t_ack, record.status = time.monotonic(), response.status
        deadline = record.t0 + SAY_TIMEOUT_S
        while (say := self._first_say(call_id, record.t0)) is None:
            event.clear()
            if (say := self._first_say(call_id, record.t0)) is not None:
                break
            try:
                await asyncio.wait_for(event.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return record
        record.t_say, record.said = float(say["at"]), str(say.get("text", ""))
        return record

    async def fetch(self, call: dict[str, Any], kind: str, query: str = "") -> FetchRecord:
        """VoIPBin's `fetch` action for `call`, timed from send to the answer's last byte."""
        url = self.stack.fetch_url + (f"?{query}" if query else "")
        body = go_json({"activeflow_id": call["activeflow_id"], "reference_id": call["id"]})
        headers = {"Content-Type": "application/json; charset=utf-8"}
        started = time.monotonic()
        async with self.http.post(url, data=body, headers=headers) as response:
            raw = await response.read()
            elapsed_ms = (time.monotonic() - started) * 1000
            status = response.status
        try:
            actions = json.loads(raw) if raw else None
        except ValueError:
            actions = None
        errors = validate_action_array(actions) if status == 200 else [f"HTTP {status}"]
        parsed = actions if isinstance(actions, list) else None
        return FetchRecord(kind, call["id"], elapsed_ms, status, parsed, errors)

    async def hang_up(self, call_id: str) -> bool:
        """The caller hangs up; True once egress has stopped the speaking session."""
        event = self.stack.watch.event(call_id)
        call = self.fake.set_call_status(call_id, "hangup")
        await self._post("call_hangup", call)
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while not any(e["op"] == "stop" for e in self.fake.speech_log(call_id)):
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        return True

    def _first_say(self, call_id: str, after: float) -> dict[str, Any] | None:
        for entry in self.fake.speech_log(call_id):
            if entry["op"] == "say" and entry["at"] >= after:
                return entry
        return None

    async def _transcribe_id(self, call_id: str) -> str | None:
        """The transcribe session egress opened for the call (after the OPEN reply)."""
        deadline = time.monotonic() + SESSION_TIMEOUT_S
        while time.monotonic() < deadline:
            sessions = self.fake.transcribes(call_id)
            if sessions:
                return str(sessions[0]["id"])
            await asyncio.sleep(0.01)
        return None

    def _signed(self, event_type: str, data: Any) -> tuple[bytes, dict[str, str]]:
        body = go_json({"type": event_type, "data": data})
        headers = {"Content-Type": "application/json"}
        headers[SIGNATURE_HEADER] = sign_body(self._secret, body)
        return body, headers

    async def _post(self, event_type: str, data: Any) -> None:
        body, headers = self._signed(event_type, data)
        async with self.http.post(self.stack.events_url, data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{event_type}: ingress answered {response.status}")


def new_call_number(index: int) -> str:
    """A distinct, possible US number per call (a new caller, a new conversation)."""
    return f"+1415{6_550_000 + index:07d}"


def new_tag() -> str:
    return uuid.uuid4().hex[:6]
