"""SMS through the whole pipeline as real processes: a signed Twilio webhook into ingress,
Kafka, the brain with the fake model, Kafka, egress sending through the fake Twilio REST API,
and Twilio's status callbacks back into ingress."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.channels.sms.twilio import INBOUND_PATH, TwilioSignatures
from shared.topics import Topics
from tests.e2e.conftest import Stack
from tests.support.chat import ChatClient, new_session
from tests.support.kafka import eventually, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

SWITCHBOARD = Path(sys.executable).parent / "switchboard"
# Time for a reply to a text to come out: the SMS collect window (2 s) plus the round trip.
QUIET_S = 4.0


def inbound_form(sid: str, sender: str, body: str, to: str = "+15005550006") -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": "AC" + "e2e0" * 8,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }


async def text(stack: Stack, sender: str, body: str, sid: str | None = None) -> httpx.Response:
    """Post Twilio's inbound webhook, signed over the public URL."""
    form = inbound_form(sid or "SM" + secrets.token_hex(16), sender, body)
    url = f"{stack.env['PUBLIC_BASE_URL']}{INBOUND_PATH}"
    signature = TwilioSignatures(stack.env["TWILIO_AUTH_TOKEN"]).sign(url, list(form.items()))
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(
            f"{stack.ingress_url}{INBOUND_PATH}",
            data=form,
            headers={"X-Twilio-Signature": signature},
        )


def sent_to(stack: Stack, number: str) -> list[dict[str, Any]]:
    return [m for m in stack.twilio.messages() if m["to"] == number]


async def replies_to(stack: Stack, number: str, count: int = 1, timeout_s: float = 30) -> list:
    await eventually(lambda: len(sent_to(stack, number)) >= count, timeout_s=timeout_s)
    return sent_to(stack, number)


def new_number() -> str:
    return f"+1415555{secrets.randbelow(10_000):04d}"


def user_turns(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def test_a_text_is_answered_by_sms_and_its_delivery_is_tracked(stack: Stack) -> None:
    number = new_number()
    response = await text(stack, number, "Hi, where is my parcel?")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    [reply] = await replies_to(stack, number)
    assert reply["body"] == "You said: Hi, where is my parcel?"
    assert reply["from"] == "+15005550006"
    assert reply["status_callback"] == f"{stack.env['PUBLIC_BASE_URL']}/v1/twilio/sms/status"

    # The fake's signed status callbacks reached ingress and became receipts.
    topics = Topics(stack.env["SWITCHBOARD_TOPIC_NAMESPACE"])
    events = await read_topic(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"],
        topics.ops,
        lambda evs: any(e.get("status") == "delivered" for e in evs),
    )
    statuses = [e["status"] for e in events if e.get("type") == "receipt"]
    assert statuses[-1] == "delivered" and "queued" in statuses
    assert [c["status_code"] for c in stack.twilio.callbacks()] == [204, 204]


async def test_the_same_message_sid_three_times_gets_one_reply(stack: Stack) -> None:
    number, sid = new_number(), "SM" + secrets.token_hex(16)
    for _ in range(3):
        assert (await text(stack, number, "Is the shop open today?", sid)).status_code == 200
    await replies_to(stack, number)
    await asyncio.sleep(QUIET_S)
    assert len(sent_to(stack, number)) == 1
    assert len(stack.model.state.requests) == 1
    # One provider message is one occurrence in the prompt, however many copies came in.
    prompt = user_turns(stack.model.state.requests[0])
    assert sum(turn.count("Is the shop open today?") for turn in prompt) == 1, prompt


async def test_stop_silences_the_number_until_start(stack: Stack) -> None:
    number = new_number()
    assert (await text(stack, number, "STOP")).status_code == 200
    assert (await text(stack, number, "hello? anyone?")).status_code == 200
    await asyncio.sleep(QUIET_S)
    assert stack.model.state.requests == [], "neither STOP nor later texts reach the model"
    assert sent_to(stack, number) == []

    assert (await text(stack, number, "start")).status_code == 200
    assert (await text(stack, number, "I am back")).status_code == 200
    [reply] = await replies_to(stack, number)
    assert reply["body"] == "You said: I am back"
    assert len(stack.model.state.requests) == 1


async def test_three_texts_within_the_window_get_one_combined_answer(stack: Stack) -> None:
    number = new_number()
    for body in ("hi", "I ordered a lamp", "it arrived broken"):
        assert (await text(stack, number, body)).status_code == 200
    await replies_to(stack, number)
    await asyncio.sleep(QUIET_S)
    [reply] = sent_to(stack, number)
    assert [user_turns(r)[-1] for r in stack.model.state.requests] == [
        "hi\nI ordered a lamp\nit arrived broken"
    ]
    assert reply["body"].startswith("You said: hi")


@pytest.fixture
def quick_backoff(stack: Stack) -> Stack:
    """Egress restarted with short retry delays: 15 refusals in a row must fit the test's wait
    (with the default 30 s cap one unlucky reply may back off for minutes, as it should)."""
    stack.services["egress"].stop()
    stack.env["EGRESS_SMS_BACKOFF_CAP_S"] = "0.5"
    stack.start("egress")
    return stack


async def test_a_429_storm_delivers_each_reply_exactly_once(quick_backoff: Stack) -> None:
    stack = quick_backoff
    stack.twilio.configure(fail_next=15, fail_status=429)
    numbers = [new_number() for _ in range(5)]
    for n, number in enumerate(numbers):
        assert (await text(stack, number, f"question {n}")).status_code == 200
    for number in numbers:
        await replies_to(stack, number, timeout_s=60)
    await asyncio.sleep(QUIET_S)
    assert [len(sent_to(stack, number)) for number in numbers] == [1] * 5
    assert sum(a["status"] == 429 for a in stack.twilio.attempts()) == 15


@pytest.fixture
def slow_twilio_env(stack: Stack) -> Stack:
    """Egress restarted with a short send timeout, so a crashed send's lease is short too."""
    stack.services["egress"].stop()
    stack.env["EGRESS_SMS_SEND_TIMEOUT_S"] = "3"
    stack.start("egress")
    return stack


async def test_egress_killed_mid_send_sends_no_duplicate(slow_twilio_env: Stack) -> None:
    stack = slow_twilio_env
    # Twilio stores the message, then holds the answer: egress dies before it learns the sid.
    stack.twilio.configure(hold_after_accept_ms=2500)
    number = new_number()
    assert (await text(stack, number, "cancel my booking please")).status_code == 200
    await replies_to(stack, number)
    stack.services["egress"].kill()
    stack.twilio.configure(hold_after_accept_ms=0)
    stack.start("egress")

    topics = Topics(stack.env["SWITCHBOARD_TOPIC_NAMESPACE"])
    events = await read_topic(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"],
        topics.ops,
        lambda evs: any(e.get("reason") == "found_at_twilio" for e in evs),
        timeout_s=60,
    )
    assert any(e.get("reason") == "found_at_twilio" for e in events)
    assert len(sent_to(stack, number)) == 1


async def test_a_refused_reply_is_dead_lettered_then_replayed_once(stack: Stack) -> None:
    number = new_number()
    stack.twilio.configure(error_for_numbers={number: 21606})  # our sender is misconfigured
    assert (await text(stack, number, "do you ship to Norway?")).status_code == 200
    topics = Topics(stack.env["SWITCHBOARD_TOPIC_NAMESPACE"])
    letters = await read_topic(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"], topics.dlq_replies, lambda evs: len(evs) >= 1
    )
    assert [(letter["reason"], letter["stage"]) for letter in letters] == [
        ("twilio_21606", "egress")
    ]
    assert sent_to(stack, number) == []

    stack.twilio.configure(error_for_numbers={})  # the fix
    env = {**os.environ, **stack.env}
    replay = [str(SWITCHBOARD), "dlq", "replay", "--queue", "replies", "--reason", "twilio_21606"]
    first = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    [reply] = await replies_to(stack, number)
    assert reply["body"] == "You said: do you ship to Norway?"

    again = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=120)
    assert "already replayed" in again.stdout
    await asyncio.sleep(QUIET_S)
    assert len(sent_to(stack, number)) == 1


async def test_a_chat_linked_to_a_number_continues_over_sms(stack: Stack) -> None:
    number = new_number()
    session = await new_session(stack.ingress_url)
    auth = {"Authorization": f"Bearer {session['token']}"}
    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        await chat.ask("m1", "My order number is 4711")
    async with httpx.AsyncClient(base_url=stack.ingress_url) as client:
        started = await client.post("/v1/identity/link", json={"phone": number}, headers=auth)
        assert started.status_code in (200, 202), started.text
        [code_sms] = await replies_to(stack, number)  # the code travels by real SMS egress
        code = re.search(r"\b(\d{6})\b", code_sms["body"])
        assert code, "the SMS carries a code"
        verified = await client.post(
            "/v1/identity/link/verify", json={"code": code.group(1)}, headers=auth
        )
        assert verified.status_code == 200, verified.text

    assert (await text(stack, number, "What was my order number again?")).status_code == 200
    replies = await replies_to(stack, number, count=2)
    assert replies[-1]["body"] == "You said: What was my order number again?"
    prompt = [m["content"] for m in stack.model.state.requests[-1]["messages"]]
    assert "My order number is 4711" in prompt, "the SMS turn sees the chat's memory"


async def test_the_simulator_shows_the_reply_egress_sent(stack: Stack) -> None:
    number = new_number()
    command = [
        str(SWITCHBOARD),
        "simulate",
        "sms",
        "Hello from the simulator",
        "--from",
        number,
        "--ingress-url",
        stack.ingress_url,
    ]
    done = await asyncio.to_thread(
        subprocess.run,
        command,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [sent] = sent_to(stack, number)
    assert f"Switchboard replied to {number}: 'You said: Hello from the simulator'" in done.stdout
    assert sent["sid"] in done.stdout
