"""The brain's turn machinery wired in the bench process, as `services.brain.main` wires it.

Used by the one-at-a-time baseline (benchmark 3) and the in-worker lock handoff
(benchmark 4), so both run the production `TurnProcessor`/`TurnRunner` with real Redis and a
real Kafka producer. `memory_cls` / `locks_cls` let a benchmark put timing probes around
them; `publish_probe` times each reply publish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from services.brain.config import BrainSettings
from services.brain.engines import Engine
from services.brain.locks import ConversationLocks
from services.brain.main import build_turn_processor
from services.brain.memory import ConversationMemory
from services.brain.turns import TurnProcessor
from services.brain.worker import TurnRunner
from services.common.deadletter import DeadLetterPublisher
from services.common.kafka import publish_event
from services.common.ops import OpsEmitter
from services.common.producer import KafkaProducer
from services.common.redis import make_redis
from shared.contracts import Reply, Stage

PublishProbe = Callable[[Reply, float], None]
"""Called after each reply publish with the reply and the seconds it took."""


@dataclass
class BrainParts:
    """Everything a turn needs, plus the clients to close afterwards."""

    broker: KafkaProducer
    redis: Redis
    blocking: Redis
    engine: Engine
    memory: ConversationMemory
    locks: ConversationLocks
    processor: TurnProcessor
    runner: TurnRunner

    async def start(self) -> None:
        await self.broker.start()

    async def close(self) -> None:
        await self.broker.stop()
        await self.engine.aclose()
        await self.redis.aclose()
        await self.blocking.aclose()


def build(
    settings: BrainSettings,
    engine: Engine,
    *,
    memory_cls: type[ConversationMemory] = ConversationMemory,
    locks_cls: type[ConversationLocks] = ConversationLocks,
    publish_probe: PublishProbe | None = None,
) -> BrainParts:
    """A `TurnRunner` around a `TurnProcessor`, composed like `services.brain.main.create_app`."""
    topics = settings.topics
    broker = KafkaProducer(settings.kafka_bootstrap_servers, f"bench-{settings.instance_id}")
    redis = make_redis(settings.redis_url)
    blocking = make_redis(settings.redis_url, socket_timeout=None)
    ops = OpsEmitter(broker, topics.ops, Stage.BRAIN, settings.instance_id)
    dead_letters = DeadLetterPublisher(broker, topics.dlq_inbound, Stage.BRAIN, ops)

    async def publish_reply(reply: Reply) -> None:
        started = time.perf_counter()
        await publish_event(broker, topics.replies(reply.channel), reply)
        if publish_probe is not None:
            publish_probe(reply, time.perf_counter() - started)

    processor = build_turn_processor(
        settings,
        engine=engine,
        redis=redis,
        blocking_redis=blocking,
        ops=ops,
        publish=publish_reply,
        memory_cls=memory_cls,
        locks_cls=locks_cls,
    )
    memory, locks = processor.memory, processor.locks
    runner = TurnRunner(processor, dead_letters, settings.max_attempts)
    return BrainParts(broker, redis, blocking, engine, memory, locks, processor, runner)
