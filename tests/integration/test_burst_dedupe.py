"""Provider retries inside SMS bursts: one provider message is one turn, one prompt line.

Twilio retries a webhook with the same MessageSid; each retry is its own Kafka record (its own
`event_id`). Whatever way the copies interleave with the burst (several inside it, one after
the answer, one in a redelivered burst), memory holds the text once, the model sees it once
and the burst gets one `reply_id`.

The first tests run the brain in-process as `services.brain.main` wires it (real Kafka, real
Redis, the fake OpenAI-compatible server); the last ones drive `TurnProcessor` directly for
redelivery shapes that a live consumer only produces after a crash.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from services.brain.config import BrainSettings
from services.brain.main import create_app
from services.brain.memory import ConversationMemory, MemoryLimits
from services.brain.turns import Turn
from services.channels.sms.profile import sms_profile
from services.channels.webchat.profile import chat_profile
from services.common.kafka import ensure_topics, publish_event
from services.common.producer import KafkaProducer
from services.fakes.openai_server import FakeModelConfig, FakeOpenAIServer
from shared.contracts import Channel, InboundMessage, Lifecycle, reply_id_for
from shared.topics import Topics
from tests.support.brain import Brain, make_brain
from tests.support.infra import Infra
from tests.support.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONV = "conv-+15550001111"
PHONE = "+15550001111"
ADDRESS_TEXT = "Please change my delivery address"
STREET_TEXT = "to 5 Elm Street, Springfield"
WINDOW_MS = 1500
SMS = sms_profile(collect_window_ms=WINDOW_MS)
"""The SMS channel's profile: bursts are collected for `WINDOW_MS`."""


def sms(text: str, sid: str) -> InboundMessage:
    """An SMS as ingress publishes it; a retry is the same call again (new event id, time)."""
    return InboundMessage(
        channel=Channel.SMS,
        profile=SMS,
        provider_message_id=sid,
        address=PHONE,
        conversation_id=CONV,
        text=text,
    )


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(FakeModelConfig(api_key="test-key")).start()
    yield server
    server.stop()


@dataclass
class LiveBrain:
    """The brain app running in this event loop, and how to talk to it."""

    topics: Topics
    bootstrap: str
    memory: ConversationMemory
    model: FakeOpenAIServer
    send: Any

    async def replies(self, until: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        return await read_topic(
            self.bootstrap,
            self.topics.replies(Channel.SMS),
            lambda events: len(events) >= until,
            timeout_s,
        )

    async def ops(self, condition: Any, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        return await read_topic(self.bootstrap, self.topics.ops, condition, timeout_s)

    async def user_texts(self) -> list[str]:
        snapshot = await self.memory.snapshot(CONV)
        return [e.text for e in (*snapshot.overflow, *snapshot.recent) if e.role == "user"]

    def prompts(self) -> list[list[dict[str, Any]]]:
        """The `messages` of every completion request the brain made for the conversation."""
        return [
            body["messages"]
            for body in self.model.state.requests
            if "warm-up" not in json.dumps(body["messages"])
        ]


def deduped(events: list[dict[str, Any]], sid: str) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e.get("step") == Lifecycle.DEDUPED
        and e.get("message_id") == sid
        and e["stage"] == "brain"
    ]


@pytest_asyncio.fixture
async def live(
    infra: Infra, namespace: str, redis: Redis, model: FakeOpenAIServer
) -> AsyncIterator[LiveBrain]:
    model.state.reset()
    settings = BrainSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        topic_partitions=1,
        instance_id=f"brain-{namespace}",
        engine="openai",
        openai_api_key="test-key",
        openai_base_url=model.base_url,
        openai_model="fake-model",
    )
    # The brain creates the core topics only; each channel's side creates its reply topic.
    reply_topics = [settings.topics.replies(Channel.CHAT), settings.topics.replies(Channel.SMS)]
    await ensure_topics(infra.kafka_bootstrap_servers, reply_topics, 1)
    app = create_app(settings)
    producer = KafkaProducer(infra.kafka_bootstrap_servers, f"test-{namespace}")
    async with app.router.lifespan_context(app):
        await producer.start()

        async def send(message: InboundMessage) -> None:
            await publish_event(producer, settings.topics.inbound, message)

        memory = ConversationMemory(
            redis, namespace, MemoryLimits(max_turns=20, ttl_s=3_600, processed_ttl_s=3_600)
        )
        brain = LiveBrain(settings.topics, infra.kafka_bootstrap_servers, memory, model, send)
        # Warm up: the consumer has joined its group and answers before the test starts, so
        # the burst below is collected live, inside its window, not replayed from a backlog.
        warm = InboundMessage(
            channel=Channel.CHAT,
            profile=chat_profile(),
            provider_message_id="warm-up",
            address="sess-warm",
            conversation_id="conv-warm",
            text="warm-up",
        )
        await send(warm)
        await read_topic(
            infra.kafka_bootstrap_servers,
            settings.topics.replies(Channel.CHAT),
            lambda events: bool(events),
            timeout_s=30.0,
        )
        try:
            yield brain
        finally:
            await producer.stop()


async def test_one_sms_sent_three_times_inside_a_burst_is_one_text_and_one_reply(
    live: LiveBrain,
) -> None:
    first = sms(ADDRESS_TEXT, "SM-address")
    street = sms(STREET_TEXT, "SM-street")
    # Twilio retried the first SMS twice, around the customer's second text.
    copies = [first, sms(ADDRESS_TEXT, "SM-address"), street, sms(ADDRESS_TEXT, "SM-address")]
    assert len({c.event_id for c in copies}) == 4
    for message in copies:
        await live.send(message)

    await live.ops(lambda events: len(deduped(events, "SM-address")) >= 2)
    # The copies were reported; give a wrongly doubled answer time to show up too.
    await asyncio.sleep(0.5)
    replies = await live.replies(until=2, timeout_s=3.0)

    assert len(replies) == 1
    assert replies[0]["reply_id"] == reply_id_for(first)
    assert replies[0]["covers"] == ["SM-address", "SM-street"]
    assert await live.user_texts() == [ADDRESS_TEXT, STREET_TEXT]
    [prompt] = live.prompts()
    said = "\n".join(m["content"] for m in prompt if m["role"] == "user")
    assert said.count(ADDRESS_TEXT) == 1
    assert said.count(STREET_TEXT) == 1


async def test_a_copy_arriving_after_the_answer_republishes_it_and_adds_nothing(
    live: LiveBrain,
) -> None:
    first = sms(ADDRESS_TEXT, "SM-address")
    await live.send(first)
    await live.send(sms(STREET_TEXT, "SM-street"))
    [answer] = await live.replies(until=1)

    await live.send(sms(ADDRESS_TEXT, "SM-address"))  # Twilio's retry, after the answer
    events = await live.ops(lambda events: len(deduped(events, "SM-address")) >= 1)
    replies = await live.replies(until=2)

    assert len(deduped(events, "SM-address")) == 1
    assert {r["reply_id"] for r in replies} == {answer["reply_id"]}  # egress drops the copy
    assert {r["text"] for r in replies} == {answer["text"]}
    assert await live.user_texts() == [ADDRESS_TEXT, STREET_TEXT]
    assert len(live.prompts()) == 1


# --- redelivered bursts (after a crash), on TurnProcessor ---------------------------------


@pytest.fixture
def brain(redis: Redis, namespace: str) -> Brain:
    return make_brain(redis, namespace)


async def user_entries(brain: Brain) -> list[str]:
    return [t.text for t in await brain.memory.history(CONV) if t.role == "user"]


async def test_a_burst_with_copies_is_answered_on_one_line_per_text(brain: Brain) -> None:
    first, street = sms(ADDRESS_TEXT, "SM-a"), sms(STREET_TEXT, "SM-b")
    copy_1, copy_2 = sms(ADDRESS_TEXT, "SM-a"), sms(ADDRESS_TEXT, "SM-a")

    [reply] = await brain.processor.run(Turn([first, copy_1, street, copy_2]))

    assert [r.user_text for r in brain.engine.requests] == [f"{ADDRESS_TEXT}\n{STREET_TEXT}"]
    assert reply.reply_id == reply_id_for(first)
    assert reply.covers == ["SM-a", "SM-b"]
    assert await user_entries(brain) == [ADDRESS_TEXT, STREET_TEXT]
    assert brain.ops.steps().count(Lifecycle.DEDUPED) == 2


async def test_an_answered_text_redelivered_in_a_new_burst_is_filtered_out(brain: Brain) -> None:
    first = sms(ADDRESS_TEXT, "SM-a")
    [answer] = await brain.processor.handle(first)

    # After a crash the answered text is redelivered, with its retry, in a burst with a new one.
    later = sms(STREET_TEXT, "SM-b")
    replies = await brain.processor.run(Turn([sms(ADDRESS_TEXT, "SM-a"), later, first]))

    assert [r.reply_id for r in replies] == [answer.reply_id, reply_id_for(later)]
    assert [r.user_text for r in brain.engine.requests] == [ADDRESS_TEXT, STREET_TEXT]
    assert await user_entries(brain) == [ADDRESS_TEXT, STREET_TEXT]
    assert replies[1].covers == []  # the new text is answered alone
    assert brain.ops.steps().count(Lifecycle.DEDUPED) == 2  # redelivery and retry


async def test_a_whole_burst_redelivered_with_a_copy_republishes_one_answer(brain: Brain) -> None:
    first, street = sms(ADDRESS_TEXT, "SM-a"), sms(STREET_TEXT, "SM-b")
    [answer] = await brain.processor.run(Turn([first, street]))

    replies = await brain.processor.run(Turn([first, street, sms(ADDRESS_TEXT, "SM-a")]))

    assert [r.reply_id for r in replies] == [answer.reply_id]
    assert len(brain.engine.requests) == 1
    assert await user_entries(brain) == [ADDRESS_TEXT, STREET_TEXT]
