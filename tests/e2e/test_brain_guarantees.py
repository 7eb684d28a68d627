"""The brain's promises under failure, with real processes, a real broker and a real Redis.

Inbound events are published straight to the inbound topic (as ingress would), answered by
brain worker processes talking to the fake model over HTTP, and delivered by a real egress
process into the chat outboxes. The checks look at what egress accepted.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from services.brain.memory import ConversationKeys
from services.fakes.openai_server import FakeModelConfig, FakeOpenAIServer
from shared.contracts import Channel, InboundMessage, reply_id_for
from shared.topics import Topics
from tests.e2e.conftest import stack_env
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

CONVERSATIONS = 100
PER_CONVERSATION = 10


@dataclass
class Pipeline:
    """Brain worker(s) and egress as processes, plus the fake model."""

    env: dict[str, str]
    model: FakeOpenAIServer
    log_dir: Path
    topics: Topics
    processes: list[ServiceProcess] = field(default_factory=list)

    def start(self, service: str, wait: bool = True) -> ServiceProcess:
        process = ServiceProcess(service, self.env, self.log_dir).start(wait=wait)
        self.processes.append(process)
        return process


@pytest.fixture
def pipeline(infra: Infra, namespace: str, tmp_path: Path) -> Iterator[Pipeline]:
    model = FakeOpenAIServer(FakeModelConfig(api_key="test-key", latency_ms=20)).start()
    env = {
        **stack_env(infra, namespace, model),
        "BRAIN_MEMORY_MAX_TURNS": str(4 * PER_CONVERSATION),
        "BRAIN_LOCK_TTL_MS": "2000",
    }
    deployment = Pipeline(env, model, tmp_path, Topics(namespace))
    deployment.start("egress")
    yield deployment
    for process in deployment.processes:
        process.stop()
    model.stop()


def conversation_messages() -> dict[str, list[InboundMessage]]:
    """100 chat conversations of 10 messages each; the session id is the address."""
    return {
        f"conv-{c:03d}": [
            InboundMessage(
                channel=Channel.CHAT,
                provider_message_id=f"sess-{c:03d}:m{i}",
                address=f"sess-{c:03d}",
                conversation_id=f"conv-{c:03d}",
                text=f"message {i} of conversation {c}",
            )
            for i in range(PER_CONVERSATION)
        ]
        for c in range(CONVERSATIONS)
    }


async def publish_paced(
    bootstrap: str, topic: str, conversations: dict[str, list[InboundMessage]], seconds: float
) -> None:
    """Publish round-robin across conversations (in order within each) over `seconds`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        rounds = list(zip(*conversations.values(), strict=True))
        for messages in rounds:
            for message in messages:
                await producer.send(
                    topic, message.model_dump_json().encode(), key=message.conversation_id.encode()
                )
            await producer.flush()
            await asyncio.sleep(seconds / len(rounds))
    finally:
        await producer.stop()


async def assert_each_message_answered_once_in_order(
    infra: Infra,
    redis: Redis,
    pipeline: Pipeline,
    conversations: dict[str, list[InboundMessage]],
) -> None:
    expected = {
        conv: [reply_id_for(m) for m in messages] for conv, messages in conversations.items()
    }
    wanted = {rid for ids in expected.values() for rid in ids}

    def complete(events: list[dict[str, Any]]) -> bool:
        return wanted <= {e["reply_id"] for e in events}

    replies = await read_topic(
        infra.kafka_bootstrap_servers, pipeline.topics.replies(Channel.CHAT), complete, 240
    )
    missing = wanted - {r["reply_id"] for r in replies}
    assert not missing, f"{len(missing)} messages never answered"

    # One answer per message: a redelivered turn republished the same text, never a new one.
    texts: dict[str, set[str]] = defaultdict(set)
    for reply in replies:
        texts[reply["reply_id"]].add(reply["text"])
    assert all(len(t) == 1 for t in texts.values())
    by_id = {
        rid: m for messages in conversations.values() for m in messages for rid in [reply_id_for(m)]
    }
    assert all(next(iter(texts[rid])) == f"You said: {by_id[rid].text}" for rid in wanted)

    # What egress accepted: every reply exactly once per session outbox, in conversation order.
    ops = await read_topic(
        infra.kafka_bootstrap_servers,
        pipeline.topics.ops,
        lambda events: (
            len({e.get("reply_id") for e in events if e.get("stage") == "egress"}) >= len(wanted)
        ),
        120,
    )
    accepted: dict[str, list[str]] = defaultdict(list)
    for event in ops:
        if event.get("stage") == "egress" and event.get("step") == "queued":
            seen = accepted[event["conversation_id"]]
            if event["reply_id"] not in seen:
                seen.append(event["reply_id"])
    assert accepted == expected
    for conv, messages in conversations.items():
        outbox = await redis.hgetall(
            f"{pipeline.env['SWITCHBOARD_REDIS_PREFIX']}:chat:outbox:{{{messages[0].address}}}"
        )
        assert sorted(outbox) == sorted(expected[conv])

    # And the shared memory holds each turn once, in order.
    prefix = pipeline.env["SWITCHBOARD_REDIS_PREFIX"]
    for conv, messages in conversations.items():
        entries = [
            json.loads(e)
            for e in await redis.lrange(ConversationKeys.of(prefix, conv).turns, 0, -1)
        ]
        users = [e["text"] for e in entries if e["role"] == "user"]
        assert users == [m.text for m in messages], conv


async def test_brain_sigkilled_at_random_moments_answers_every_message_once_in_order(
    infra: Infra, redis: Redis, pipeline: Pipeline
) -> None:
    conversations = conversation_messages()
    brain = pipeline.start("brain")
    publishing = asyncio.create_task(
        publish_paced(
            infra.kafka_bootstrap_servers, pipeline.topics.inbound, conversations, seconds=8
        )
    )
    rng = random.Random()
    for _ in range(3):
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        brain.kill()
        brain.start(wait=False)
    await publishing
    brain.wait_ready()

    await assert_each_message_answered_once_in_order(infra, redis, pipeline, conversations)


async def test_workers_joining_and_leaving_mid_run_answer_every_message_once_in_order(
    infra: Infra, redis: Redis, pipeline: Pipeline
) -> None:
    conversations = conversation_messages()
    first = pipeline.start("brain")
    publishing = asyncio.create_task(
        publish_paced(
            infra.kafka_bootstrap_servers, pipeline.topics.inbound, conversations, seconds=10
        )
    )
    await asyncio.sleep(2)
    pipeline.start("brain")  # joins: the group rebalances partitions onto it
    await asyncio.sleep(3)
    await asyncio.to_thread(first.stop)  # leaves gracefully: drains, commits, hands over
    await publishing

    await assert_each_message_answered_once_in_order(infra, redis, pipeline, conversations)


async def test_a_second_voice_utterance_interrupts_a_slow_answer(
    infra: Infra, redis: Redis, pipeline: Pipeline
) -> None:
    pipeline.model.configure(
        replies=[
            "Let me check that for you. Your order left our warehouse on Monday and it "
            "should arrive by Friday at the latest, weather permitting."
        ],
        chunk_delay_ms=100,
    )
    pipeline.start("brain")
    call = {"channel": Channel.VOICE, "address": "call-1", "conversation_id": "conv-call"}
    first = InboundMessage(provider_message_id="utt-1", text="where is my order", **call)
    second = InboundMessage(provider_message_id="utt-2", text="actually, cancel it", **call)
    voice_topic = pipeline.topics.replies(Channel.VOICE)

    await publish_paced(infra.kafka_bootstrap_servers, pipeline.topics.inbound, {"c": [first]}, 0)
    spoken = await read_topic(infra.kafka_bootstrap_servers, voice_topic, lambda e: len(e) >= 1)
    assert spoken[0]["text"] == "Let me check that for you."
    await publish_paced(infra.kafka_bootstrap_servers, pipeline.topics.inbound, {"c": [second]}, 0)

    def answered_second(events: list[dict[str, Any]]) -> bool:
        return any(e["in_reply_to"] == "utt-2" and e["final"] for e in events)

    replies = await read_topic(infra.kafka_bootstrap_servers, voice_topic, answered_second, 60)
    to_first = [(r["kind"], r["text"]) for r in replies if r["in_reply_to"] == "utt-1"]
    assert to_first == [("message", "Let me check that for you."), ("stop", "")]
    to_second = [r["text"] for r in replies if r["in_reply_to"] == "utt-2" and r["text"]]
    assert to_second == ["You said: actually, cancel it."]

    prefix = pipeline.env["SWITCHBOARD_REDIS_PREFIX"]
    memory = [
        json.loads(e)
        for e in await redis.lrange(ConversationKeys.of(prefix, "conv-call").turns, 0, -1)
    ]
    assert [(e["role"], e["text"], e.get("interrupted", False)) for e in memory] == [
        ("user", "where is my order", False),
        ("assistant", "Let me check that for you.", True),
        ("user", "actually, cancel it", False),
        ("assistant", "You said: actually, cancel it.", False),
    ]
    last_request = pipeline.model.state.requests[-1]["messages"]
    assert "[interrupted by the caller]" in last_request[-2]["content"]
