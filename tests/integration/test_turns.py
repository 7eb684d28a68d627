"""TurnProcessor on a real Redis: locks, fenced memory, dedupe, double texting, shaping.

Each message carries its channel's profile, as ingress sets it; the last tests give made-up
channels a profile and get the behaviour that profile describes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from services.brain.engines.base import EngineTurn
from services.brain.locks import LockLost
from services.brain.memory import MemoryLimits
from services.brain.sms_text import count_segments
from services.brain.turns import Turn
from services.channels.sms.profile import sms_profile
from services.channels.voipbin.profile import VoiceProfileSettings, voice_profile
from services.channels.webchat.profile import chat_profile
from shared.contracts import (
    Channel,
    ChannelProfile,
    InboundMessage,
    Lifecycle,
    MessageKind,
    Modality,
    ReplyKind,
    TextFormat,
    reply_id_for,
)
from tests.support.brain import APOLOGY, Brain, ScriptedEngine, make_brain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONV = "conv-42"
PROFILES = {
    Channel.CHAT: chat_profile(),
    Channel.SMS: sms_profile(),
    Channel.VOICE: voice_profile(VoiceProfileSettings()),
}
"""The built-in channels' profiles, as their ingress sets them."""


@pytest.fixture
def brain(redis: Redis, namespace: str) -> Brain:
    return make_brain(redis, namespace)


def inbound(
    text: str = "Where is my order?",
    *,
    channel: str = Channel.CHAT,
    profile: ChannelProfile | None = None,
    message_id: str = "m1",
    kind: MessageKind = MessageKind.TEXT,
    conversation_id: str = CONV,
    **fields: Any,
) -> InboundMessage:
    address = "sess-1" if channel == Channel.CHAT else "+15551234567"
    return InboundMessage(
        channel=channel,
        profile=profile or PROFILES[Channel(channel)],
        provider_message_id=message_id,
        address=address,
        conversation_id=conversation_id,
        kind=kind,
        text=text,
        **fields,
    )


async def wait_until(condition: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_text_message_gets_a_fenced_reply_with_its_deterministic_id(brain: Brain) -> None:
    message = inbound("Where is my order?")

    [reply] = await brain.processor.handle(message)

    assert brain.published == [reply]
    assert reply.reply_id == reply_id_for(message)
    assert (reply.in_reply_to, reply.address, reply.conversation_id) == ("m1", "sess-1", CONV)
    assert reply.text == "echo: Where is my order?"
    assert reply.fence is not None and reply.fence >= 1
    assert brain.ops.steps() == [Lifecycle.LLM_START, Lifecycle.LLM_END, Lifecycle.REPLY_EMITTED]


async def test_chat_keeps_markdown_and_sms_gets_plain_gsm7_text(brain: Brain) -> None:
    answer = "Your order is **shipped** \u2014 \u201ctrack\u201d it [here](https://t.example/1)"
    brain.engine.answers = [answer, answer]

    [chat] = await brain.processor.handle(inbound(channel=Channel.CHAT, message_id="c"))
    [sms] = await brain.processor.handle(inbound(channel=Channel.SMS, message_id="s"))

    assert chat.text == answer
    assert sms.text == 'Your order is shipped - "track" it here (https://t.example/1)'


async def test_same_provider_message_three_times_is_one_turn_and_one_reply(brain: Brain) -> None:
    copies = [inbound("Change my address", message_id="SM123", channel=Channel.SMS) for _ in "abc"]
    assert len({copy.event_id for copy in copies}) == 3

    for copy in copies:
        brain.engine.answers = [f"answer to {copy.event_id}"]
        await brain.processor.handle(copy)

    assert len(brain.engine.requests) == 1
    assert {r.reply_id for r in brain.published} == {reply_id_for(copies[0])}
    assert len({r.text for r in brain.published}) == 1
    assert len(await brain.memory.history(CONV)) == 2
    assert brain.ops.steps().count(Lifecycle.DEDUPED) == 2


async def test_engine_failure_publishes_and_records_the_apology(brain: Brain) -> None:
    brain.engine.fail = True

    [reply] = await brain.processor.handle(inbound("Hello?", channel=Channel.SMS))

    assert reply.text == APOLOGY
    assert await brain.memory.history(CONV) == [
        EngineTurn(role="user", text="Hello?", channel="sms"),
        EngineTurn(role="assistant", text=APOLOGY, channel="sms"),
    ]
    failed = [json.loads(a[0]) for a, _ in brain.ops.calls if b'"failed"' in a[0]]
    assert failed[0]["reason"] == "engine:server_error"
    assert failed[0]["attributes"] == {"attempts": 3}


@pytest.mark.parametrize(
    "kind", [MessageKind.CALL_STARTED, MessageKind.CALL_ENDED, MessageKind.PARTIAL_TRANSCRIPT]
)
async def test_call_kinds_outside_a_call_take_no_turn(brain: Brain, kind: MessageKind) -> None:
    # On voice these are call control (tests/integration/test_voice_turns.py); elsewhere
    # they mean nothing and must not reach the model.
    assert await brain.processor.handle(inbound("words", channel=Channel.SMS, kind=kind)) == []
    assert brain.published == [] and brain.engine.requests == [] and brain.ops.calls == []


async def test_engine_sees_earlier_turns_from_every_channel(brain: Brain) -> None:
    await brain.processor.handle(inbound("I texted earlier", channel=Channel.SMS, message_id="s"))
    await brain.processor.handle(inbound("now on chat", message_id="c"))

    second = brain.engine.requests[1]
    assert second.user_text == "now on chat"
    assert list(second.history) == [
        EngineTurn(role="user", text="I texted earlier", channel="sms"),
        EngineTurn(role="assistant", text="echo: I texted earlier", channel="sms"),
    ]


async def test_sms_burst_is_one_turn_covering_every_text(brain: Brain) -> None:
    texts = [
        inbound(t, channel=Channel.SMS, message_id=f"SM{i}")
        for i, t in enumerate(["hi", "one more thing", "my order is late"])
    ]

    [reply] = await brain.processor.run(Turn(texts))

    assert [r.user_text for r in brain.engine.requests] == ["hi\none more thing\nmy order is late"]
    assert reply.reply_id == reply_id_for(texts[0])
    assert reply.covers == ["SM0", "SM1", "SM2"]
    history = await brain.memory.history(CONV)
    assert [t.role for t in history] == ["user", "user", "user", "assistant"]
    # A redelivery of any text of the burst republishes the same answer, no new turn.
    [again] = await brain.processor.handle(texts[1])
    assert (again.reply_id, again.text, again.covers) == (reply.reply_id, reply.text, reply.covers)
    assert len(brain.engine.requests) == 1


async def test_voice_answer_is_spoken_sentence_by_sentence(brain: Brain) -> None:
    brain.engine.answers = ["Your order shipped today. It arrives **Friday**. Anything else?"]
    message = inbound("where is my order", channel=Channel.VOICE)

    replies = await brain.processor.handle(message)

    assert [(r.part, r.text, r.final) for r in replies] == [
        (0, "Your order shipped today.", False),
        (1, "It arrives Friday.", False),
        (2, "Anything else?", False),
        (3, "", True),
    ]
    assert [r.reply_id for r in replies] == [reply_id_for(message, p) for p in range(4)]
    history = await brain.memory.history(CONV)
    assert history[-1].text == "Your order shipped today. It arrives Friday. Anything else?"


async def test_voice_barge_in_stops_the_answer_and_memory_keeps_what_was_said(
    redis: Redis, namespace: str
) -> None:
    brain = make_brain(redis, namespace, engine=ScriptedEngine(chunk_delay_s=0.05))
    brain.engine.answers = ["Let me check that for you. Your order left our warehouse on Monday."]
    first = inbound("where is my order", channel=Channel.VOICE, message_id="u1")
    turn = Turn([first])

    task = asyncio.create_task(brain.processor.run(turn))
    await wait_until(lambda: len(brain.published) == 1)
    turn.interrupt()
    replies = await task

    assert [(r.kind, r.text) for r in replies] == [
        (ReplyKind.MESSAGE, "Let me check that for you."),
        (ReplyKind.STOP, ""),
    ]
    assert brain.published == replies
    snapshot = await brain.memory.snapshot(CONV, [first.dedupe_key])
    said = snapshot.recent[-1]
    assert (said.role, said.text, said.interrupted) == (
        "assistant",
        "Let me check that for you.",
        True,
    )
    assert json.loads(snapshot.processed[first.dedupe_key])["interrupted"] is True
    assert Lifecycle.INTERRUPTED in brain.ops.steps()
    # The engine is told about the barge-in on the next turn.
    await brain.processor.handle(
        inbound("actually, cancel it", channel=Channel.VOICE, message_id="u2")
    )
    assert brain.engine.requests[-1].history[-1].text.endswith("[interrupted by the caller]")
    # A redelivered interrupted utterance says nothing more.
    before = len(brain.published)
    assert await brain.processor.handle(first) == []
    assert len(brain.published) == before


async def test_stale_worker_cannot_write_memory_or_publish(redis: Redis, namespace: str) -> None:
    gate = asyncio.Event()
    stale = make_brain(redis, namespace, engine=ScriptedEngine(gate=gate), lock_ttl_ms=600)
    fresh = make_brain(redis, namespace)
    message = inbound("refund please", message_id="m-stale")

    task = asyncio.create_task(stale.processor.handle(message))
    await wait_until(lambda: len(stale.engine.requests) == 1)
    # The stale worker's lease runs out (think: a long GC pause) and another worker takes
    # the conversation and answers the same message.
    await redis.delete(stale.locks.keys(CONV).lock)
    [fresh_reply] = await fresh.processor.handle(message)
    gate.set()

    with pytest.raises(LockLost):
        await task

    assert stale.published == []
    assert Lifecycle.FENCED in stale.ops.steps()
    history = await fresh.memory.history(CONV)
    assert [t.text for t in history] == ["refund please", fresh_reply.text]


async def test_fenced_commit_is_refused_after_the_lease_expired(
    redis: Redis, namespace: str
) -> None:
    brain = make_brain(redis, namespace, lock_ttl_ms=500)
    other = make_brain(redis, namespace)
    lease, _ = await brain.locks.acquire(CONV)
    await asyncio.sleep(0.6)
    newer, _ = await other.locks.acquire(CONV)

    from services.brain.memory import CommitStatus, MemoryEntry

    status = await brain.memory.commit(
        lease, ["chat:x"], [MemoryEntry("user", "hi", "chat")], json.dumps({"replies": []})
    )

    assert status is CommitStatus.FENCED
    assert newer.token > lease.token
    assert await brain.memory.history(CONV) == []
    assert not await brain.locks.release(lease)
    assert await redis.get(other.locks.keys(CONV).lock) == str(newer.token)


async def test_one_customer_on_two_workers_is_served_one_turn_at_a_time(
    redis: Redis, namespace: str
) -> None:
    gate = asyncio.Event()
    worker_a = make_brain(redis, namespace, engine=ScriptedEngine(gate=gate))
    worker_b = make_brain(redis, namespace)

    first = asyncio.create_task(
        worker_a.processor.handle(inbound("texting you", channel=Channel.SMS, message_id="s1"))
    )
    await wait_until(lambda: len(worker_a.engine.requests) == 1)
    second = asyncio.create_task(
        worker_b.processor.handle(inbound("and chatting", message_id="c1"))
    )
    await asyncio.sleep(0.2)
    assert worker_b.engine.requests == []  # waiting for the lock, not polling past it
    gate.set()
    await first
    await second

    assert [t.text for t in worker_b.engine.requests[0].history] == [
        "texting you",
        "echo: texting you",
    ]
    assert [(t.channel, t.role) for t in await worker_b.memory.history(CONV)] == [
        ("sms", "user"),
        ("sms", "assistant"),
        ("chat", "user"),
        ("chat", "assistant"),
    ]


async def test_older_turns_are_folded_into_a_running_summary(redis: Redis, namespace: str) -> None:
    limits = MemoryLimits(max_turns=4, ttl_s=3_600, processed_ttl_s=3_600)
    brain = make_brain(redis, namespace, limits=limits)

    for index, text in enumerate(["one", "two", "three", "four"]):
        await brain.processor.handle(inbound(text, message_id=f"m{index}"))

    snapshot = await brain.memory.snapshot(CONV)
    assert "chat/user: one" in snapshot.summary
    assert "chat/assistant: echo: two" in snapshot.summary
    assert snapshot.overflow == []
    assert [e.text for e in snapshot.recent] == ["three", "echo: three", "four", "echo: four"]
    assert brain.engine.requests[-1].summary == "chat/user: one; chat/assistant: echo: one"


async def test_a_summary_slower_than_the_lock_lease_is_still_folded(
    redis: Redis, namespace: str
) -> None:
    """The lease is renewed while the summary is written, as while an answer is."""

    class SlowSummary(ScriptedEngine):
        async def summarize(self, *args: Any) -> str:
            await asyncio.sleep(0.9)  # three times the lease below
            return await super().summarize(*args)

    limits = MemoryLimits(max_turns=2, ttl_s=3_600, processed_ttl_s=3_600)
    brain = make_brain(redis, namespace, engine=SlowSummary(), limits=limits, lock_ttl_ms=300)

    for index, text in enumerate(["one", "two"]):
        await brain.processor.handle(inbound(text, message_id=f"m{index}"))

    snapshot = await brain.memory.snapshot(CONV)
    assert snapshot.summary == "chat/user: one; chat/assistant: echo: one"
    assert snapshot.overflow == []


async def test_identity_link_merges_chat_memory_into_the_phone_conversation(
    brain: Brain,
) -> None:
    chat_conv, phone_conv = "conv-chat", "conv-phone"
    await brain.processor.handle(inbound("I'm Ada", message_id="c1", conversation_id=chat_conv))
    await brain.processor.handle(
        inbound("order 7?", channel=Channel.SMS, message_id="s1", conversation_id=phone_conv)
    )
    link = inbound(
        "",
        kind=MessageKind.IDENTITY_LINKED,
        message_id="link:abc",
        conversation_id=phone_conv,
        merge_from=chat_conv,
    )

    await brain.processor.handle(link)
    await brain.processor.handle(link)  # redelivered: merged once

    texts = [t.text for t in await brain.memory.history(phone_conv)]
    assert texts == ["I'm Ada", "echo: I'm Ada", "order 7?", "echo: order 7?"]


# --- behaviour follows the profile, not the channel's name ---------------------------------

KIOSK = ChannelProfile(text_format=TextFormat.GSM7, max_segments=1, collect_window_ms=1500)
"""A made-up texting channel that, like SMS, wants GSM-7 text and collects bursts."""
PHONE = ChannelProfile(
    modality=Modality.SPEECH,
    text_format=TextFormat.SPEAKABLE,
    max_chars=300,
    interruptible=True,
    streams_parts=True,
)
"""A made-up phone channel (another voice provider)."""


async def test_the_engine_is_told_the_text_format_of_the_channel(brain: Brain) -> None:
    await brain.processor.handle(inbound("hi", message_id="c"))
    await brain.processor.handle(inbound("hi", channel=Channel.SMS, message_id="s"))
    await brain.processor.handle(inbound("hi", channel=Channel.VOICE, message_id="v"))
    await brain.processor.handle(inbound("hi", channel="kiosk", profile=KIOSK, message_id="k"))

    assert [r.text_format for r in brain.engine.requests] == [
        TextFormat.MARKDOWN,
        TextFormat.GSM7,
        TextFormat.SPEAKABLE,
        TextFormat.GSM7,
    ]


async def test_the_sms_segment_budget_comes_with_the_profile(brain: Brain) -> None:
    brain.engine.answers = ["word " * 200]
    one_segment = sms_profile(segment_budget=1)

    [reply] = await brain.processor.handle(inbound(channel=Channel.SMS, profile=one_segment))

    assert reply.text == ("word " * 31).rstrip() + "..."
    assert count_segments(reply.text).segments == 1


async def test_a_made_up_channel_with_a_gsm7_profile_is_answered_like_sms(brain: Brain) -> None:
    answer = "Your order is **shipped** \u2014 \u201ctrack\u201d it [here](https://t.example/1)"
    brain.engine.answers = [answer, "word " * 200]
    texts = [
        inbound(t, channel="kiosk", profile=KIOSK, message_id=f"K{i}")
        for i, t in enumerate(["hi", "one more thing"])
    ]

    [burst] = await brain.processor.run(Turn(texts))
    [long] = await brain.processor.handle(inbound(channel="kiosk", profile=KIOSK, message_id="K9"))

    assert burst.channel == "kiosk"
    assert burst.covers == ["K0", "K1"]
    assert burst.text == 'Your order is shipped - "track" it here (https://t.example/1)'
    assert brain.engine.requests[0].user_text == "hi\none more thing"
    assert count_segments(long.text).segments == 1  # the kiosk's own budget


async def test_a_made_up_text_channel_with_the_default_profile_gets_markdown_whole(
    brain: Brain,
) -> None:
    answer = "Your order is **shipped**. It arrives Friday. Anything else?"
    brain.engine.answers = [answer]

    replies = await brain.processor.handle(
        inbound(channel="kiosk", profile=ChannelProfile(), message_id="k1")
    )

    assert [(r.part, r.text, r.final, r.channel) for r in replies] == [(0, answer, True, "kiosk")]


@pytest.mark.parametrize("channel", ["chat", "sms"])
async def test_the_hangup_marker_never_reaches_a_text_customer_nor_ends_anything(
    brain: Brain, channel: str
) -> None:
    # A model that saw earlier call turns may end a text answer with the marker too.
    brain.engine.answers = ["Thanks, goodbye! [hangup]"]

    replies = await brain.processor.handle(inbound("bye", channel=channel, message_id="t1"))

    assert [(r.text, r.end_call) for r in replies] == [("Thanks, goodbye!", False)]


async def test_a_made_up_speech_channel_is_spoken_in_parts_and_hung_up_on_goodbye(
    brain: Brain,
) -> None:
    brain.engine.answers = ["Your order shipped today. It arrives **Friday**. Goodbye! [hangup]"]

    replies = await brain.processor.handle(
        inbound("thanks, bye", channel="phone", profile=PHONE, message_id="p1")
    )

    assert [(r.part, r.text, r.final, r.end_call) for r in replies] == [
        (0, "Your order shipped today.", False, False),
        (1, "It arrives Friday.", False, False),
        (2, "Goodbye!", False, False),
        (3, "", True, True),
    ]
    history = await brain.memory.history(CONV)
    assert history[-1] == EngineTurn(
        role="assistant",
        text="Your order shipped today. It arrives Friday. Goodbye!",
        channel="phone",
    )


async def test_a_made_up_speech_channel_is_interrupted_like_voice(
    redis: Redis, namespace: str
) -> None:
    brain = make_brain(redis, namespace, engine=ScriptedEngine(chunk_delay_s=0.05))
    brain.engine.answers = ["Let me check that for you. Your order left our warehouse on Monday."]
    turn = Turn([inbound("where is my order", channel="phone", profile=PHONE, message_id="u1")])

    task = asyncio.create_task(brain.processor.run(turn))
    await wait_until(lambda: len(brain.published) == 1)
    turn.interrupt()
    replies = await task

    assert [(r.kind, r.text) for r in replies] == [
        (ReplyKind.MESSAGE, "Let me check that for you."),
        (ReplyKind.STOP, ""),
    ]
    said = (await brain.memory.snapshot(CONV)).recent[-1]
    assert (said.text, said.interrupted, said.channel) == (
        "Let me check that for you.",
        True,
        "phone",
    )


async def test_memory_takes_what_the_provider_says_the_caller_heard(brain: Brain) -> None:
    brain.engine.answers = [
        "Your order shipped today. It arrives Friday.",
        "Sure, I will check that for you.",
    ]
    await brain.processor.handle(inbound("where is it?", channel="phone", profile=PHONE))

    # The next turn says what the caller actually heard of that answer (VAPI's transcript).
    await brain.processor.handle(
        inbound(
            "wait, when?",
            channel="phone",
            profile=PHONE,
            message_id="m2",
            heard="Your order shipped",
        )
    )

    history = await brain.memory.history(CONV)
    assert [(t.role, t.text) for t in history[:3]] == [
        ("user", "where is it?"),
        ("assistant", "Your order shipped [interrupted by the caller]"),
        ("user", "wait, when?"),
    ]
    entries = (await brain.memory.snapshot(CONV)).recent
    assert entries[1].interrupted is True


async def test_heard_text_of_another_channel_or_a_text_channel_changes_nothing(
    brain: Brain,
) -> None:
    brain.engine.answers = ["Your order shipped today.", "Anything else?"]
    await brain.processor.handle(inbound("where is it?", channel="phone", profile=PHONE))
    await brain.processor.handle(inbound("thanks", message_id="m2", heard="Your order"))

    history = await brain.memory.history(CONV)
    assert history[1].text == "Your order shipped today."
