"""Fixed amounts of web chat and SMS traffic against a running stack, and the checks that
every acknowledged message was answered once, in order.

Each client behaves as the real one does: a browser resends a message (same id) when ingress
answers `unavailable`, Twilio re-posts a webhook (same MessageSid) after a non-2xx answer.
Every acknowledgement and every refusal is recorded with its time, so a test can say what
ingress answered while the cluster was degraded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from services.channels.sms.twilio import INBOUND_PATH, TwilioSignatures
from shared.topics import Topics
from tests.e2e.conftest import Stack
from tests.support.kafka import eventually, read_topic


@dataclass
class Outcomes:
    """What ingress answered, with monotonic times: when each acknowledgement came, and
    when each refused attempt was *sent* (a refusal answers a wait that began then)."""

    acked_at: list[float] = field(default_factory=list)
    refused_sent_at: list[float] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def acked_between(self, start: float, end: float) -> int:
        return sum(1 for at in self.acked_at if start <= at <= end)

    def refused_sent_between(self, start: float, end: float) -> int:
        return sum(1 for at in self.refused_sent_at if start <= at <= end)


class ChatSession:
    """One browser sending messages one after another: `count` of them, or (`count=None`)
    until `run`'s `stop` is set. A refused message is resent with the same id."""

    def __init__(
        self, base_url: str, token: str, name: str, count: int | None, pause_s: float
    ) -> None:
        self.url = base_url.replace("http://", "ws://") + f"/v1/chat/ws?token={token}"
        self.name = name
        self.count = count
        self.pause_s = pause_s
        self.outcomes = Outcomes()
        self.acked: list[str] = []
        self.replies: list[dict[str, Any]] = []
        self.closed_unexpectedly = 0
        self.answer_timeout_s = 120.0
        self._waiting: dict[str, asyncio.Future[str]] = {}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Send, then wait (socket open) until every acknowledged message is answered."""
        stop = stop or asyncio.Event()
        async with websockets.connect(self.url) as ws:
            reader = asyncio.create_task(self._read(ws))
            try:
                index = 0
                while not stop.is_set() and (self.count is None or index < self.count):
                    if await self._send_until_acked(ws, f"{self.name}-{index}", stop):
                        index += 1
                    await asyncio.sleep(self.pause_s)
                # A browser stays open for its answers: replies to a closed socket wait in
                # the outbox for the next connection, which this client never makes.
                await self._until_answered(self.answer_timeout_s)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _until_answered(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if {r["in_reply_to"] for r in self.replies} >= set(self.acked):
                return
            await asyncio.sleep(0.2)

    async def _send_until_acked(self, ws: Any, message_id: str, stop: asyncio.Event) -> bool:
        """Whether `message_id` was acknowledged (False: `stop` came first)."""
        while not stop.is_set():
            answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._waiting[message_id] = answer
            sent_at = time.monotonic()
            await ws.send(json.dumps({"type": "message", "id": message_id, "text": message_id}))
            try:
                outcome = await asyncio.wait_for(answer, 30)
            except TimeoutError:
                outcome = "timeout"
            if outcome == "ack":
                self.outcomes.acked_at.append(time.monotonic())
                self.acked.append(message_id)
                return True
            if outcome == "unavailable":
                self.outcomes.refused_sent_at.append(sent_at)
            else:
                self.outcomes.other.append(outcome)
            await asyncio.sleep(1.0)
        return False

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "reply":
                    self.replies.append(frame)
                elif frame["type"] in ("ack", "error"):
                    outcome = "ack" if frame["type"] == "ack" else frame["code"]
                    waiting = self._waiting.pop(frame.get("id", ""), None)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(outcome)
        except websockets.ConnectionClosed:
            self.closed_unexpectedly += 1


class SmsPhone:
    """One phone texting `count` times; a refused webhook is re-posted with the same sid."""

    def __init__(self, stack: Stack, number: str, count: int, pause_s: float) -> None:
        self.stack = stack
        self.number = number
        self.count = count
        self.pause_s = pause_s
        self.outcomes = Outcomes()
        self.accepted: list[str] = []
        self.sid_of: dict[str, str] = {}

    async def run(self) -> None:
        # Idle connections closed after 2 s, before uvicorn closes them (5 s): reusing one
        # just as the server drops it fails the request with a ReadError.
        limits = httpx.Limits(keepalive_expiry=2)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            for index in range(self.count):
                body = f"sms-{self.number[-4:]}-{index}"
                sid = "SM" + secrets.token_hex(16)
                while True:
                    sent_at = time.monotonic()
                    status = await self._post(client, sid, body)
                    if status == 200:
                        self.outcomes.acked_at.append(time.monotonic())
                        self.accepted.append(body)
                        self.sid_of[body] = sid
                        break
                    if status == 503:
                        self.outcomes.refused_sent_at.append(sent_at)
                    else:
                        self.outcomes.other.append(str(status))
                    await asyncio.sleep(1.0)
                # Longer than the brain's SMS collect window: each text is its own turn.
                await asyncio.sleep(self.pause_s)

    async def _post(self, client: httpx.AsyncClient, sid: str, body: str) -> int | str:
        """The webhook's status code, or the name of the error that stopped the request."""
        try:
            response = await post_inbound_sms(client, self.stack, self.number, sid, body)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return response.status_code


async def post_inbound_sms(
    client: httpx.AsyncClient, stack: Stack, number: str, sid: str, body: str
) -> httpx.Response:
    """One inbound text as Twilio posts it: the form, signed for the stack's public URL."""
    form = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": "AC" + "e2e0" * 8,
        "From": number,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }
    url = f"{stack.env['PUBLIC_BASE_URL']}{INBOUND_PATH}"
    signature = TwilioSignatures(stack.env["TWILIO_AUTH_TOKEN"]).sign(url, list(form.items()))
    return await client.post(
        f"{stack.ingress_url}{INBOUND_PATH}", data=form, headers={"X-Twilio-Signature": signature}
    )


def merged(clients: list[ChatSession] | list[SmsPhone]) -> Outcomes:
    """Every client's outcomes as one timeline."""
    total = Outcomes()
    for client in clients:
        total.acked_at += client.outcomes.acked_at
        total.refused_sent_at += client.outcomes.refused_sent_at
        total.other += client.outcomes.other
    total.acked_at.sort()
    total.refused_sent_at.sort()
    return total


async def assert_answered_once_in_order(
    stack: Stack, chats: list[ChatSession], phones: list[SmsPhone], timeout_s: float = 90
) -> None:
    """Every acknowledged chat message and accepted text answered exactly once, in order.

    On a loss the failure names the unanswered messages and what the ops topic says about
    each (stage and step, no text), which shows where in the pipeline it stopped."""

    def sent(number: str) -> list[str]:
        return [m["body"] for m in stack.twilio.messages() if m["to"] == number]

    def unanswered() -> list[str]:
        missing = [
            mid
            for chat in chats
            for mid in sorted(set(chat.acked) - {r["in_reply_to"] for r in chat.replies})
        ]
        for phone in phones:
            missing += [phone.sid_of[b] for b in phone.accepted[len(sent(phone.number)) :]]
        return missing

    await eventually(lambda: not unanswered(), timeout_s=timeout_s, interval_s=0.5)
    # Quiet for a moment: a doubled answer would arrive after the last expected one.
    await asyncio.sleep(3)
    missing = unanswered()
    assert not missing, f"acknowledged but unanswered: {await trace(stack, missing)}"
    for chat in chats:
        assert chat.closed_unexpectedly == 0, f"{chat.name}: socket dropped"
        answered = [reply["in_reply_to"] for reply in chat.replies]
        assert [k for k, n in Counter(answered).items() if n > 1] == [], f"{chat.name}: doubled"
        assert answered == sorted(answered, key=lambda mid: int(mid.split("-")[1])), chat.name
        assert [r["text"] for r in chat.replies] == [f"You said: {mid}" for mid in answered]
    for phone in phones:
        expected = [f"You said: {body}" for body in phone.accepted]
        # The bodies are the test's own ("You said: sms-1012-3"), no customer data.
        got = sent(phone.number)
        assert got == expected, f"{phone.number[-4:]}: sent {got}, expected {expected}"


async def trace(stack: Stack, message_ids: list[str], limit: int = 10) -> dict[str, list[str]]:
    """The lifecycle steps the ops topic recorded for each message id (a chat message's id,
    a text's MessageSid)."""
    topic = Topics(stack.env["SWITCHBOARD_TOPIC_NAMESPACE"]).ops
    events = await read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], topic, lambda _: False, 10)
    wanted = set(message_ids[:limit])
    steps: dict[str, list[str]] = {mid: [] for mid in wanted}
    for event in events:
        # A chat message's provider id is "<session id>:<client id>".
        found = str(event.get("message_id")).rsplit(":", 1)[-1]
        if found in wanted:
            steps[found].append(f"{event.get('stage')}.{event.get('step')}")
    return steps
