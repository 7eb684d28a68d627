"""Voice through the whole pipeline as real processes: the fake VoIPBin sends signed events and
runs the flow's `fetch` against ingress; the brain answers with the fake model; egress speaks
through the fake VoIPBin's Speaking API, flushes on barge-in and hangs up when it is over."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from typing import Any

import pytest

from services.channels.voipbin.fake import FetchResult, transcript_data
from services.ingress.config import IngressSettings
from tests.e2e.conftest import Stack
from tests.e2e.test_sms_e2e import SWITCHBOARD, new_number, replies_to, text, user_turns
from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

FALLBACK = IngressSettings.model_fields["voipbin_fallback_text"].default


class Call:
    """One caller on the line, driven as VoIPBin would drive the call."""

    def __init__(self, stack: Stack, caller: str) -> None:
        self.stack = stack
        self.fake = stack.voipbin
        self.caller = caller
        self.id = self.fake.add_call(source=caller, status="progressing")["id"]

    async def answer(self) -> FetchResult:
        """The call is answered: `call_progressing`, then the flow's `fetch`."""
        await self.fake.aemit("call_progressing", self.fake.call(self.id))
        return await self.fetch()

    async def fetch(self, query: str = "") -> FetchResult:
        url = self.stack.fetch_url + (f"?{query}" if query else "")
        return await self.fake.afetch(
            url, activeflow_id=str(uuid.uuid4()), reference_id=self.id, timeout=15
        )

    async def transcribe_id(self) -> str:
        """The transcription egress opened for the call."""
        sessions = await eventually(lambda: self.fake.transcribes(self.id), timeout_s=20)
        assert sessions, "egress never started transcription"
        return str(sessions[0]["id"])

    def said(self) -> list[str]:
        return [e["text"] for e in self.fake.speech_log(self.id) if e["op"] == "say"]

    def ops(self) -> list[str]:
        return [e["op"] for e in self.fake.speech_log(self.id)]

    async def say(self, words: str, *, wait: bool = True) -> list[str]:
        """The caller speaks a final utterance; returns what the agent said back."""
        before = len(self.said())
        tid = await self.transcribe_id()
        delivery = await self.fake.aemit("transcript_created", transcript_data(tid, words))
        assert delivery["status_code"] == 200, delivery
        if not wait:
            return []
        await eventually(lambda: len(self.said()) > before, timeout_s=30)
        await asyncio.sleep(0.5)  # the rest of a streamed answer
        return self.said()[before:]

    def status(self) -> str:
        return str(self.fake.call(self.id)["status"])


def talk_texts(actions: list[Any] | None) -> list[str]:
    return [a["option"]["text"] for a in actions or [] if a["type"] == "talk"]


async def test_a_full_call_greets_answers_three_turns_and_hangs_up_on_goodbye(
    stack: Stack,
) -> None:
    call = Call(stack, new_number())
    greeting = await call.answer()
    assert greeting.ok, greeting.errors
    assert greeting.status_code == 200
    assert [a["type"] for a in greeting.actions or []] == [
        "talk",
        "variable_set",
        "digits_receive",
        "fetch",
    ]
    assert talk_texts(greeting.actions)[0] != FALLBACK, "the brain's greeting came in time"

    for question in ("I ordered a lamp.", "When will it arrive?", "Can it come Friday?"):
        heard = await call.say(question)
        assert heard == [f"You said: {question}"]
    await call.say("Okay, thanks. Goodbye!")
    assert await eventually(lambda: call.status() == "hangup", timeout_s=20), call.ops()
    await call.fake.aemit("call_hangup", call.fake.call(call.id))

    # One memory: each model request carries every earlier turn of the call.
    requests = stack.model.state.requests
    last = user_turns(requests[-1])
    assert last[-4:] == [
        "I ordered a lamp.",
        "When will it arrive?",
        "Can it come Friday?",
        "Okay, thanks. Goodbye!",
    ]
    speakings = call.fake.speakings(call.id)
    assert len(speakings) == 1, "one speaking session per call"
    assert await eventually(lambda: call.fake.speakings(call.id)[0]["status"] == "stopped")


async def test_speaking_over_the_agent_flushes_it_and_memory_keeps_it_interrupted(
    stack: Stack,
) -> None:
    call = Call(stack, new_number())
    await call.answer()
    await call.transcribe_id()
    stack.model.configure(
        replies=[
            "Our store opens at nine. It closes at six on weekdays. "
            "On Saturdays it closes at four. On Sundays it stays closed all day."
        ],
        chunk_delay_ms=250,
    )
    tid = await call.transcribe_id()
    await call.fake.aemit("transcript_created", transcript_data(tid, "When are you open?"))
    await eventually(lambda: call.said(), timeout_s=30)
    await asyncio.to_thread(call.fake.emit_speech, tid, "started")
    assert await eventually(lambda: "flush" in call.ops(), timeout_s=20), call.ops()
    stack.model.configure(replies=[], chunk_delay_ms=0)
    await call.say("Sorry, just tell me Saturday.")
    said = call.said()
    assert "On Sundays it stays closed all day." not in said
    # The model is told the earlier answer was cut off where the caller heard it stop.
    history = stack.model.state.requests[-1]["messages"]
    cut = [m["content"] for m in history if m["role"] == "assistant"][-1]
    assert cut.startswith("Our store opens at nine.")
    assert "interrupted" in cut


async def test_duplicated_and_reordered_events_answer_each_turn_once(stack: Stack) -> None:
    call = Call(stack, new_number())
    # VoIPBin's own transcribe session (as a flow's transcribe_start would make it): its
    # transcripts arrive before the call_progressing event and before any mapping.
    transcribe = call.fake.state.create_transcribe(call.id, {"language": "en-US"})
    data = transcript_data(transcribe["id"], "Is my parcel on its way?")
    await asyncio.gather(*(call.fake.aemit("transcript_created", data) for _ in range(3)))
    await call.fake.aemit("call_progressing", call.fake.call(call.id))
    await call.fake.aemit("call_progressing", call.fake.call(call.id))
    await eventually(lambda: call.said(), timeout_s=30)
    await asyncio.sleep(2.0)
    asked = [r for r in stack.model.state.requests if "parcel" in str(user_turns(r)[-1:])]
    assert len(asked) == 1
    assert call.said() == ["You said: Is my parcel on its way?"]


async def test_a_forged_event_is_refused_and_changes_nothing(stack: Stack) -> None:
    call = Call(stack, new_number())
    delivery = await call.fake.aemit(
        "call_progressing", call.fake.call(call.id), signature="sha256=" + "0" * 64
    )
    assert delivery["status_code"] == 401
    await asyncio.sleep(2.0)
    assert call.fake.transcribes(call.id) == [], "a forged event must not open sessions"


async def test_with_the_brain_stopped_the_fetch_still_answers_in_time(stack: Stack) -> None:
    stack.services["brain"].stop()
    call = Call(stack, new_number())
    started = time.monotonic()
    result = await call.answer()
    assert result.ok, result.errors
    assert result.elapsed_s < 3.0 + 0.3
    assert time.monotonic() - started < 6
    assert [a["type"] for a in result.actions or []] == [
        "talk",
        "variable_set",
        "digits_receive",
        "fetch",
    ]
    assert talk_texts(result.actions)[0] == FALLBACK


async def test_a_caller_who_texted_is_greeted_with_it_and_sms_continues_the_call(
    stack: Stack,
) -> None:
    number = new_number()
    assert (await text(stack, number, "Hi, this is Dana. Order 4521 is late.")).status_code == 200
    await replies_to(stack, number)

    call = Call(stack, number)
    greeting = await call.answer()
    assert greeting.ok
    greeting_request = next(
        r for r in stack.model.state.requests if "Order 4521" in str(r["messages"])
    )
    assert "Dana" in str(greeting_request["messages"])
    await call.say("Please send it to my office instead.")
    await call.say("Thanks, bye.")
    assert await eventually(lambda: call.status() == "hangup", timeout_s=20)
    await call.fake.aemit("call_hangup", call.fake.call(call.id))

    assert (await text(stack, number, "Did you change the address?")).status_code == 200
    await replies_to(stack, number, count=2)
    sms_request = stack.model.state.requests[-1]
    assert "Please send it to my office instead." in user_turns(sms_request)


async def test_the_call_simulator_prints_what_the_agent_said_and_did(stack: Stack) -> None:
    """`switchboard simulate call`, as a newcomer runs it after `make run`."""
    number = new_number()
    command = [
        str(SWITCHBOARD),
        "simulate",
        "call",
        "--from",
        number,
        "--ingress-url",
        stack.ingress_url,
        "Do you ship to Canada?",
        "Thanks, goodbye.",
    ]
    done = await asyncio.to_thread(
        subprocess.run,
        command,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agent: You said: Do you ship to Canada?" in done.stdout
    assert "hung up" in done.stdout
    assert stack.env["VOIPBIN_ACCESS_KEY"] not in done.stdout + done.stderr
    [call] = [c for c in stack.voipbin.calls() if c["source"]["target"] == number]
    assert call["status"] == "hangup"
