"""TurnProcessor with a real ConversationMemory in Redis, a scripted engine and list sinks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from services.brain.engines.base import EngineError, EngineRequest, EngineTurn
from services.brain.memory import ConversationMemory, MemoryLimits
from services.brain.turns import TurnProcessor
from services.common.ops import OpsEmitter
from shared.contracts import (
    Channel,
    InboundMessage,
    Lifecycle,
    MessageKind,
    Reply,
    Stage,
    reply_id_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

APOLOGY = "Sorry, I can't answer right now. A human will follow up."
CONV = "conv-42"


@dataclass
class ScriptedEngine:
    """An Engine that answers from a script (or fails), recording every request."""

    answers: list[str] = field(default_factory=list)
    fail: bool = False
    name: str = "scripted"
    requests: list[EngineRequest] = field(default_factory=list)

    async def generate(self, request: EngineRequest) -> str:
        self.requests.append(request)
        if self.fail:
            raise EngineError("model_down")
        if self.answers:
            return self.answers.pop(0)
        return f"echo: {request.user_text}"

    async def aclose(self) -> None:
        pass


class RecordingBroker:
    """Stands in for the Kafka broker of OpsEmitter: records what would be published."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))

    def steps(self) -> list[str]:
        return [json.loads(args[0])["step"] for args, _ in self.calls]


@dataclass
class Brain:
    processor: TurnProcessor
    engine: ScriptedEngine
    memory: ConversationMemory
    published: list[Reply]
    ops: RecordingBroker


@pytest.fixture
def brain(redis: Redis, namespace: str) -> Brain:
    engine = ScriptedEngine()
    memory = ConversationMemory(
        redis, namespace, MemoryLimits(max_turns=20, ttl_s=3_600, processed_ttl_s=3_600)
    )
    published: list[Reply] = []
    ops = RecordingBroker()

    async def publish(reply: Reply) -> None:
        published.append(reply)

    processor = TurnProcessor(
        engine=engine,
        memory=memory,
        publish=publish,
        ops=OpsEmitter(ops, "ops.v1", Stage.BRAIN, "brain-test"),  # type: ignore[arg-type]
        apology_text=APOLOGY,
    )
    return Brain(processor, engine, memory, published, ops)


def inbound(
    text: str = "Where is my order?",
    *,
    channel: Channel = Channel.CHAT,
    message_id: str = "m1",
    kind: MessageKind = MessageKind.TEXT,
    **fields: Any,
) -> InboundMessage:
    address = "sess-1" if channel is Channel.CHAT else "+15551234567"
    return InboundMessage(
        channel=channel,
        provider_message_id=message_id,
        address=address,
        conversation_id=CONV,
        kind=kind,
        text=text,
        **fields,
    )


async def test_text_message_gets_a_reply_with_its_deterministic_id(brain: Brain) -> None:
    message = inbound("Where is my order?")

    reply = await brain.processor.handle(message)

    assert reply is not None
    assert brain.published == [reply]
    assert reply.reply_id == reply_id_for(message)
    assert reply.in_reply_to == "m1"
    assert reply.conversation_id == CONV
    assert reply.channel is Channel.CHAT
    assert reply.address == "sess-1"
    assert reply.text == "echo: Where is my order?"
    assert brain.ops.steps() == [Lifecycle.LLM_START, Lifecycle.LLM_END, Lifecycle.REPLY_EMITTED]


async def test_chat_reply_keeps_markdown(brain: Brain) -> None:
    brain.engine.answers = ["Your order is **shipped**. [Track it](https://t.example/1)"]

    reply = await brain.processor.handle(inbound(channel=Channel.CHAT))

    assert reply is not None
    assert reply.text == "Your order is **shipped**. [Track it](https://t.example/1)"


async def test_sms_reply_is_plain_text(brain: Brain) -> None:
    brain.engine.answers = ["Your order is **shipped**. [Track it](https://t.example/1)"]

    reply = await brain.processor.handle(inbound(channel=Channel.SMS))

    assert reply is not None
    assert reply.text == "Your order is shipped. Track it (https://t.example/1)"
    history = await brain.memory.history(CONV)
    assert history[-1] == EngineTurn(role="assistant", text=reply.text, channel="sms")


async def test_redelivered_message_is_answered_once_and_republished_identically(
    brain: Brain,
) -> None:
    message = inbound("Can I change my address?", message_id="SM123", channel=Channel.SMS)
    redelivery = inbound("Can I change my address?", message_id="SM123", channel=Channel.SMS)
    assert redelivery.event_id != message.event_id

    first = await brain.processor.handle(message)
    brain.engine.answers = ["a different answer that must not be used"]
    second = await brain.processor.handle(message)
    third = await brain.processor.handle(redelivery)

    assert len(brain.engine.requests) == 1
    assert first is not None and second is not None and third is not None
    assert [r.reply_id for r in brain.published] == [reply_id_for(message)] * 3
    assert [r.text for r in brain.published] == ["echo: Can I change my address?"] * 3
    assert len(await brain.memory.history(CONV)) == 2
    assert brain.ops.steps().count(Lifecycle.DEDUPED) == 2


async def test_engine_failure_publishes_and_records_the_apology(brain: Brain) -> None:
    brain.engine.fail = True
    message = inbound("Hello?", channel=Channel.SMS)

    reply = await brain.processor.handle(message)

    assert reply is not None
    assert reply.text == APOLOGY
    assert brain.published == [reply]
    assert await brain.memory.answer_of(message.dedupe_key) == APOLOGY
    assert await brain.memory.history(CONV) == [
        EngineTurn(role="user", text="Hello?", channel="sms"),
        EngineTurn(role="assistant", text=APOLOGY, channel="sms"),
    ]
    assert Lifecycle.FAILED in brain.ops.steps()
    assert Lifecycle.LLM_END not in brain.ops.steps()


@pytest.mark.parametrize(
    "kind", [MessageKind.CALL_STARTED, MessageKind.CALL_ENDED, MessageKind.PARTIAL_TRANSCRIPT]
)
async def test_non_text_kinds_are_ignored(brain: Brain, kind: MessageKind) -> None:
    message = inbound("partial words", channel=Channel.VOICE, kind=kind)

    assert await brain.processor.handle(message) is None

    assert brain.published == []
    assert brain.engine.requests == []
    assert brain.ops.calls == []
    assert await brain.memory.history(CONV) == []
    assert await brain.memory.answer_of(message.dedupe_key) is None


async def test_blank_text_is_ignored(brain: Brain) -> None:
    assert await brain.processor.handle(inbound("   \n ")) is None
    assert brain.published == []
    assert brain.engine.requests == []


async def test_engine_receives_earlier_turns_from_every_channel(brain: Brain) -> None:
    await brain.processor.handle(
        inbound("I texted you earlier", channel=Channel.SMS, message_id="s1")
    )
    await brain.processor.handle(inbound("now on chat", channel=Channel.CHAT, message_id="c1"))

    second = brain.engine.requests[1]
    assert second.conversation_id == CONV
    assert second.channel == "chat"
    assert second.user_text == "now on chat"
    assert list(second.history) == [
        EngineTurn(role="user", text="I texted you earlier", channel="sms"),
        EngineTurn(role="assistant", text="echo: I texted you earlier", channel="sms"),
    ]
    assert brain.engine.requests[0].history == []


async def test_reply_continues_the_inbound_trace(brain: Brain) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"

    reply = await brain.processor.handle(inbound(trace={"traceparent": traceparent}))

    assert reply is not None and reply.trace is not None
    assert reply.trace.traceparent.split("-")[1] == trace_id
    assert reply.trace.traceparent != traceparent


async def test_a_very_long_answer_still_produces_a_reply(brain: Brain) -> None:
    brain.engine.answers = ["word " * 2_000]  # 10,000 characters

    reply = await brain.processor.handle(inbound("Tell me everything"))

    assert reply is not None
    assert 0 < len(reply.text) <= 8_000
    assert brain.published == [reply]
