"""The one-message-at-a-time baseline of benchmark 3.

A plain aiokafka consumer that takes one record, runs it through the same `TurnRunner` /
`TurnProcessor` (real Redis memory and locks, the OpenAI engine against the same fake model,
replies published to Kafka) and commits that record before taking the next: what a naive
FastStream/aiokafka handler with at-least-once commits does. It runs for a fixed time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.harness import wiring
from bench.harness.infra import Infra, create_topics, drop_namespace, new_namespace
from bench.harness.kafka_io import chat_messages, prepublish
from services.brain.config import BrainSettings
from services.brain.engines import build_engine
from services.brain.turns import Turn
from services.brain.worker import parse_work


@dataclass
class BaselineResult:
    turns: int
    elapsed_s: float
    turn_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.turns / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def run(
    infra: Infra,
    *,
    model_url: str,
    api_key: str,
    conversations: int,
    per_conversation: int,
    duration_s: float,
) -> BaselineResult:
    """Consume the same kind of pre-filled topic one record at a time for `duration_s`."""
    namespace = new_namespace("baseline")
    topics = await create_topics(infra, namespace)
    settings = BrainSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        engine="openai",
        openai_api_key=api_key,
        openai_base_url=model_url,
        openai_model="fake-model",
    )
    messages = chat_messages(conversations, per_conversation, namespace)
    await prepublish(infra.kafka_bootstrap_servers, topics.inbound, messages)
    parts = wiring.build(settings, build_engine(settings))
    consumer = AIOKafkaConsumer(
        topics.inbound,
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=settings.group_id("baseline"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1,
    )
    await parts.start()
    await consumer.start()
    try:
        return await _consume(consumer, parts, duration_s)
    finally:
        await consumer.stop()
        await parts.close()
        await drop_namespace(infra, namespace)


async def _consume(
    consumer: AIOKafkaConsumer, parts: wiring.BrainParts, duration_s: float
) -> BaselineResult:
    turns = 0
    turn_ms: list[float] = []
    started: float | None = None
    while started is None or time.perf_counter() - started < duration_s:
        record = await consumer.getone()
        if started is None:
            started = time.perf_counter()  # excludes the group join
        work = parse_work(record)
        assert work.message is not None, work.poison
        before = time.perf_counter()
        await parts.runner([work], Turn([work.message]))
        turn_ms.append((time.perf_counter() - before) * 1000)
        await consumer.commit({TopicPartition(record.topic, record.partition): record.offset + 1})
        turns += 1
    return BaselineResult(turns, time.perf_counter() - started, turn_ms)
