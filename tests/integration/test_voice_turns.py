"""Voice calls on a real Redis: call control, greetings, keypad turns, barge-in, hanging up."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord
from redis.asyncio import Redis

from services.brain.calls import GREETING_FALLBACK
from services.brain.double_texting import DoubleTextingPolicy
from services.brain.engines.base import EngineTurn
from services.brain.engines.offline import DEFAULT_KNOWLEDGE_FILE, KnowledgeBase, OfflineEngine
from services.brain.prompt import GREETING_INSTRUCTION, KEYS_PRESSED
from services.brain.scheduler import PartitionScheduler, Work
from services.brain.turns import Turn
from services.channels.sms.profile import sms_profile
from services.channels.voipbin.profile import VoiceProfileSettings, voice_profile
from shared.contracts import (
    Channel,
    ChannelProfile,
    InboundMessage,
    Lifecycle,
    MessageKind,
    Modality,
    Reply,
    ReplyKind,
    ReplyMode,
    ReplyModeKind,
    TextFormat,
    reply_id_for,
    utcnow,
)
from tests.support.brain import Brain, ScriptedEngine, make_brain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONV = "conv-caller"
CALL = "call-7f3a"
VOICE = voice_profile(VoiceProfileSettings())
"""The VoIPBin channel's profile with its defaults (300 spoken characters, 15 chars/s)."""


@pytest.fixture
def brain(redis: Redis, namespace: str) -> Brain:
    return make_brain(redis, namespace)


def call_event(
    kind: MessageKind,
    message_id: str,
    text: str = "",
    *,
    held: bool = False,
    channel: str = Channel.VOICE,
    profile: ChannelProfile = VOICE,
) -> InboundMessage:
    """A voice event of the call, as ingress publishes it (`held`: reply mode SYNC)."""
    fields: dict[str, Any] = {}
    if held:
        fields["reply"] = ReplyMode(
            kind=ReplyModeKind.SYNC,
            deadline_at=utcnow() + timedelta(seconds=5),
            correlation_id=uuid.uuid4().hex,
            reply_to="ingress-a",
        )
    return InboundMessage(
        channel=channel,
        profile=profile,
        provider_message_id=message_id,
        address=CALL,
        conversation_id=CONV,
        kind=kind,
        text=text,
        **fields,
    )


def utterance(text: str, message_id: str = "transcript:t1") -> InboundMessage:
    return call_event(MessageKind.TEXT, message_id, text)


def sms(text: str, message_id: str = "SM1") -> InboundMessage:
    return InboundMessage(
        channel=Channel.SMS,
        profile=sms_profile(),
        provider_message_id=message_id,
        address="+15551234567",
        conversation_id=CONV,
        text=text,
    )


async def wait_until(condition: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def remembered(brain: Brain) -> list[tuple[str, str, str, bool]]:
    snapshot = await brain.memory.snapshot(CONV)
    return [(e.role, e.text, e.channel, e.interrupted) for e in snapshot.recent]


# --- call control ----------------------------------------------------------------------------

CONTROL = [
    (MessageKind.CALL_STARTED, f"{CALL}:progressing", ReplyKind.OPEN),
    (MessageKind.CALL_ENDED, f"{CALL}:hangup", ReplyKind.CLOSE),
    (MessageKind.PARTIAL_TRANSCRIPT, "speech:s1", ReplyKind.STOP),
]


@pytest.mark.parametrize(
    ("kind", "message_id", "reply_kind"), CONTROL, ids=["open", "close", "stop"]
)
async def test_call_control_becomes_one_fenced_control_reply_without_model_or_memory(
    brain: Brain, kind: MessageKind, message_id: str, reply_kind: ReplyKind
) -> None:
    message = call_event(kind, message_id, "so" if kind is MessageKind.PARTIAL_TRANSCRIPT else "")

    [reply] = await brain.processor.handle(message)

    assert brain.published == [reply]
    assert (reply.kind, reply.text, reply.final, reply.end_call) == (reply_kind, "", True, False)
    assert reply.reply_id == reply_id_for(message)
    assert (reply.address, reply.conversation_id, reply.channel) == (CALL, CONV, Channel.VOICE)
    assert reply.in_reply_to == message_id
    assert reply.fence is not None and reply.fence >= 1
    assert brain.engine.requests == []
    assert await remembered(brain) == []
    assert brain.ops.steps() == [Lifecycle.REPLY_EMITTED]
    # The lock is free again for the next event of the call.
    assert await brain.locks._redis.get(brain.locks.keys(CONV).lock) is None


@pytest.mark.parametrize(
    ("kind", "message_id", "reply_kind"), CONTROL, ids=["open", "close", "stop"]
)
async def test_redelivered_call_control_republishes_the_same_reply(
    brain: Brain, kind: MessageKind, message_id: str, reply_kind: ReplyKind
) -> None:
    [first] = await brain.processor.handle(call_event(kind, message_id))
    [again] = await brain.processor.handle(call_event(kind, message_id))  # new event id

    assert (again.reply_id, again.kind) == (first.reply_id, reply_kind)
    assert again.fence is not None and first.fence is not None and again.fence > first.fence
    assert brain.ops.steps() == [Lifecycle.REPLY_EMITTED, Lifecycle.DEDUPED]
    assert await remembered(brain) == []


# --- barge-in and hangup while an answer is spoken (through the scheduler) -------------------


class CallRunner:
    """A PartitionScheduler wired to the brain's TurnProcessor, as the consumer wires it."""

    def __init__(self, brain: Brain) -> None:
        self.scheduler = PartitionScheduler(
            0, self._handle, DoubleTextingPolicy(), asyncio.Semaphore(4)
        )
        self._brain = brain
        self._offset = 0

    async def _handle(self, batch: Sequence[Work], turn: Turn | None) -> None:
        if turn is not None:
            await self._brain.processor.run(turn)

    def add(self, message: InboundMessage) -> None:
        key = CONV.encode()
        record = ConsumerRecord(
            topic="inbound",
            partition=0,
            offset=self._offset,
            timestamp=0,
            timestamp_type=0,
            key=key,
            value=b"{}",
            checksum=None,
            serialized_key_size=len(key),
            serialized_value_size=2,
            headers=[],
        )
        self._offset += 1
        self.scheduler.add(Work(record, message))

    async def settled(self) -> None:
        await wait_until(lambda: self.scheduler.offsets.to_commit() == self._offset)


@pytest_asyncio.fixture
async def slow_brain(redis: Redis, namespace: str) -> AsyncIterator[Brain]:
    engine = ScriptedEngine(chunk_delay_s=0.05)
    engine.answers = ["Let me check that for you. Your order left our warehouse on Monday."]
    yield make_brain(redis, namespace, engine=engine)


async def test_caller_speaking_stops_a_slow_answer_and_memory_keeps_what_was_said(
    slow_brain: Brain,
) -> None:
    brain, runner = slow_brain, CallRunner(slow_brain)
    runner.add(utterance("where is my order"))
    await wait_until(lambda: len(brain.published) == 1)

    runner.add(call_event(MessageKind.PARTIAL_TRANSCRIPT, "speech:s2", "actually"))
    await runner.settled()

    assert [(r.in_reply_to, r.kind, r.text) for r in brain.published] == [
        ("transcript:t1", ReplyKind.MESSAGE, "Let me check that for you."),
        ("transcript:t1", ReplyKind.STOP, ""),  # the answer stops where the caller was
        ("speech:s2", ReplyKind.STOP, ""),  # the partial's own, idempotent STOP
    ]
    assert not any(r.end_call for r in brain.published)
    assert await remembered(brain) == [
        ("user", "where is my order", "voice", False),
        ("assistant", "Let me check that for you.", "voice", True),
    ]
    assert Lifecycle.INTERRUPTED in brain.ops.steps()


async def test_hanging_up_stops_a_slow_answer_and_closes_the_call(slow_brain: Brain) -> None:
    brain, runner = slow_brain, CallRunner(slow_brain)
    runner.add(utterance("where is my order"))
    await wait_until(lambda: len(brain.published) == 1)

    runner.add(call_event(MessageKind.CALL_ENDED, f"{CALL}:hangup"))
    await runner.settled()

    assert [(r.kind, r.text) for r in brain.published] == [
        (ReplyKind.MESSAGE, "Let me check that for you."),
        (ReplyKind.STOP, ""),
        (ReplyKind.CLOSE, ""),
    ]
    assert (await remembered(brain))[-1] == (
        "assistant",
        "Let me check that for you.",
        "voice",
        True,
    )


async def test_any_interruptible_speech_channel_gets_call_control_and_barge_in(
    slow_brain: Brain,
) -> None:
    """Another voice provider: it declares a speech profile, the brain needs no change."""
    phone = ChannelProfile(
        modality=Modality.SPEECH,
        text_format=TextFormat.SPEAKABLE,
        interruptible=True,
        streams_parts=True,
    )
    brain, runner = slow_brain, CallRunner(slow_brain)
    on_phone = functools.partial(call_event, channel="phone", profile=phone)
    runner.add(on_phone(MessageKind.CALL_STARTED, f"{CALL}:progressing"))
    runner.add(on_phone(MessageKind.TEXT, "transcript:t1", "where is my order"))
    await wait_until(lambda: len(brain.published) == 2)

    runner.add(on_phone(MessageKind.PARTIAL_TRANSCRIPT, "speech:s2", "actually"))
    await runner.settled()

    assert [(r.channel, r.kind, r.text) for r in brain.published] == [
        ("phone", ReplyKind.OPEN, ""),
        ("phone", ReplyKind.MESSAGE, "Let me check that for you."),
        ("phone", ReplyKind.STOP, ""),
        ("phone", ReplyKind.STOP, ""),
    ]
    assert await remembered(brain) == [
        ("user", "where is my order", "phone", False),
        ("assistant", "Let me check that for you.", "phone", True),
    ]


async def test_a_partial_behind_a_queued_utterance_does_not_cut_its_answer(
    redis: Redis, namespace: str
) -> None:
    gate = asyncio.Event()
    brain = make_brain(redis, namespace, engine=ScriptedEngine(gate=gate))
    runner = CallRunner(brain)
    runner.add(call_event(MessageKind.CALL_STARTED, f"{CALL}:progressing"))
    runner.add(utterance("what are your hours", "transcript:t1"))
    await wait_until(lambda: len(brain.engine.requests) == 1)
    runner.add(utterance("and on sunday", "transcript:t2"))  # interrupts t1
    runner.add(call_event(MessageKind.PARTIAL_TRANSCRIPT, "speech:s3", "so"))
    gate.set()
    await runner.settled()

    kinds = [(r.in_reply_to, r.kind) for r in brain.published if r.text == ""]
    assert ("transcript:t2", ReplyKind.MESSAGE) in kinds  # t2 answered to its final part
    assert all(r.in_reply_to != "speech:s3" for r in brain.published)  # no STOP after it
    assert [t.text for t in await brain.memory.history(CONV)][-2:] == [
        "and on sunday",
        "echo: and on sunday.",
    ]


# --- the greeting ----------------------------------------------------------------------------


async def test_held_greeting_is_one_whole_reply_routed_back_with_the_sms_context(
    brain: Brain,
) -> None:
    await brain.processor.handle(sms("Hi, I'm Ana. My order 7 is late"))
    brain.engine.answers = ["Welcome back, Ana! Is this about **order 7**?"]
    greeting = call_event(MessageKind.GREETING, f"{CALL}:greeting", held=True)

    [reply] = await brain.processor.handle(greeting)

    assert brain.published[-1] == reply
    assert (reply.kind, reply.part, reply.final, reply.end_call) == (
        ReplyKind.MESSAGE,
        0,
        True,
        False,
    )
    assert reply.text == "Welcome back, Ana! Is this about order 7?"  # shaped for voice
    assert reply.reply == greeting.reply  # egress routes it to the held fetch
    assert (reply.reply_id, reply.address) == (reply_id_for(greeting), CALL)
    asked = brain.engine.requests[-1]
    assert asked.user_text == GREETING_INSTRUCTION
    assert asked.channel == "voice"
    assert EngineTurn("user", "Hi, I'm Ana. My order 7 is late", "sms") in asked.history
    assert asked.budget_s is not None and 0 < asked.budget_s <= 5
    # Only the greeting is remembered: nobody said anything yet.
    assert (await remembered(brain))[2:] == [
        ("assistant", "Welcome back, Ana! Is this about order 7?", "voice", False)
    ]


async def test_offline_engine_greets_a_returning_caller_by_name(
    redis: Redis, namespace: str
) -> None:
    engine = OfflineEngine(KnowledgeBase.from_file(DEFAULT_KNOWLEDGE_FILE))
    brain = make_brain(redis, namespace, engine=engine)  # type: ignore[arg-type]
    await brain.processor.handle(sms("Hi, my name is Ana"))
    await brain.processor.handle(sms("how much is the fiber plan?", "SM2"))

    [reply] = await brain.processor.handle(
        call_event(MessageKind.GREETING, f"{CALL}:greeting", held=True)
    )

    assert reply.text == (
        "Welcome back, Ana! Are you calling about plans and pricing again, or something else?"
    )


async def test_redelivered_greeting_republishes_the_same_reply(brain: Brain) -> None:
    greeting = call_event(MessageKind.GREETING, f"{CALL}:greeting", held=True)
    [first] = await brain.processor.handle(greeting)
    [again] = await brain.processor.handle(greeting.model_copy(update={"event_id": "redelivery"}))

    assert (again.reply_id, again.text, again.reply) == (first.reply_id, first.text, first.reply)
    assert len(brain.engine.requests) == 1
    assert len(await remembered(brain)) == 1


async def test_greeting_falls_back_to_a_safe_greeting_when_the_engine_fails(
    brain: Brain,
) -> None:
    brain.engine.fail = True
    [reply] = await brain.processor.handle(
        call_event(MessageKind.GREETING, f"{CALL}:greeting", held=True)
    )
    assert reply.text == GREETING_FALLBACK
    assert await remembered(brain) == [("assistant", GREETING_FALLBACK, "voice", False)]


async def test_unheld_greeting_is_streamed_like_any_voice_answer(brain: Brain) -> None:
    brain.engine.answers = ["Hello there. How can I help?"]
    replies = await brain.processor.handle(call_event(MessageKind.GREETING, f"{CALL}:greeting"))
    assert [(r.text, r.final) for r in replies] == [
        ("Hello there.", False),
        ("How can I help?", False),
        ("", True),
    ]


# --- keys pressed ----------------------------------------------------------------------------


async def test_held_keypad_press_is_a_remembered_turn_with_one_whole_reply(
    brain: Brain,
) -> None:
    brain.engine.answers = ["You chose billing. What is your account number?"]
    keys = call_event(MessageKind.DTMF, f"{CALL}:dtmf:1", "1", held=True)

    [reply] = await brain.processor.handle(keys)

    pressed = KEYS_PRESSED.format(keys="1")
    assert brain.engine.requests[-1].user_text == pressed
    assert (reply.text, reply.final, reply.reply) == (
        "You chose billing. What is your account number?",
        True,
        keys.reply,
    )
    assert await remembered(brain) == [
        ("user", pressed, "voice", False),
        ("assistant", reply.text, "voice", False),
    ]


async def test_unheld_keypad_press_is_streamed(brain: Brain) -> None:
    brain.engine.answers = ["Got it. One moment."]
    replies = await brain.processor.handle(call_event(MessageKind.DTMF, f"{CALL}:dtmf:2", "12#"))
    assert brain.engine.requests[-1].user_text == KEYS_PRESSED.format(keys="12#")
    assert [r.text for r in replies] == ["Got it.", "One moment.", ""]


# --- ending the call -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "answer", "end_call"),
    [
        ("ok thanks, bye", "Thanks for calling. Goodbye!", True),
        ("that's all, thank you, goodbye", "Is there anything else?", True),  # gone anyway
        ("what are your hours", "We open at 8. Goodbye![hang up]", True),  # split marker
        ("what are your hours", "We open at 8. Anything else?", False),
        ("I want to say goodbye to my old plan", "Sure, which plan?", False),
    ],
)
async def test_final_part_ends_the_call_on_a_goodbye_or_the_hangup_marker(
    brain: Brain, said: str, answer: str, end_call: bool
) -> None:
    brain.engine.answers = [answer]

    replies = await brain.processor.handle(utterance(said))

    assert [r.end_call for r in replies] == [False] * (len(replies) - 1) + [end_call]
    assert replies[-1].final
    assert not any("[" in r.text for r in replies)
    assert all("[" not in e[1] for e in await remembered(brain))


async def test_held_answer_with_the_marker_ends_the_call(brain: Brain) -> None:
    brain.engine.answers = ["Your payment went through. Goodbye! [hangup]"]
    [reply] = await brain.processor.handle(
        call_event(MessageKind.DTMF, f"{CALL}:dtmf:3", "2", held=True)
    )
    assert (reply.text, reply.end_call) == ("Your payment went through. Goodbye!", True)
    stored = await brain.memory.snapshot(CONV, [f"voice:{CALL}:dtmf:3"])
    [recorded] = json.loads(stored.processed[f"voice:{CALL}:dtmf:3"])["replies"]
    assert Reply.model_validate(recorded).end_call  # a redelivery hangs up too


async def test_an_interrupted_goodbye_never_ends_the_call(slow_brain: Brain) -> None:
    brain = slow_brain
    brain.engine.answers = ["Thanks for calling us today. Have a lovely evening. Goodbye!"]
    turn = Turn([utterance("ok thanks, bye")])
    task = asyncio.create_task(brain.processor.run(turn))
    await wait_until(lambda: len(brain.published) == 1)
    turn.interrupt()
    replies = await task

    assert [r.kind for r in replies] == [ReplyKind.MESSAGE, ReplyKind.STOP]
    assert not any(r.end_call for r in replies)


# --- barge-in while an answer plays ----------------------------------------------------------


async def test_speaking_over_a_playing_answer_cuts_it_in_memory_to_what_was_heard(
    brain: Brain,
) -> None:
    await brain.processor.handle(utterance("Tell me all about your opening hours please"))
    [*_, (role, said, channel, interrupted)] = await remembered(brain)
    assert (role, channel, interrupted) == ("assistant", "voice", False)
    await asyncio.sleep(0.5)
    # The speaking rate travels with the call's profile: ~10 characters played by now.
    slow_voice = voice_profile(VoiceProfileSettings(speech_chars_per_s=20.0))

    [stop] = await brain.processor.handle(
        call_event(MessageKind.PARTIAL_TRANSCRIPT, "speech:b1", profile=slow_voice)
    )

    assert stop.kind is ReplyKind.STOP
    [*_, (_, heard, _, cut)] = await remembered(brain)
    assert cut is True
    assert len(heard) < len(said) and said.startswith(heard)
    assert said[len(heard)] == " ", "the cut falls between words"
    assert Lifecycle.INTERRUPTED in brain.ops.steps()


async def test_speaking_after_the_answer_finished_playing_leaves_it_whole(brain: Brain) -> None:
    await brain.processor.handle(utterance("What time is it"))
    before = await remembered(brain)
    # At the fastest rate a profile allows, the 22 characters said play in 0.22 s.
    fast_voice = voice_profile(VoiceProfileSettings(speech_chars_per_s=100.0))
    await asyncio.sleep(0.3)

    await brain.processor.handle(
        call_event(MessageKind.PARTIAL_TRANSCRIPT, "speech:b2", profile=fast_voice)
    )

    assert await remembered(brain) == before
