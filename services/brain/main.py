"""Brain composition root: the key-ordered consumer of the inbound topic, health endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from redis.asyncio import Redis

from services.brain.config import BrainSettings
from services.brain.consumer import KeyOrderedConsumer
from services.brain.double_texting import DoubleTextingPolicy
from services.brain.engines import Engine, build_engine
from services.brain.locks import ConversationLocks
from services.brain.memory import ConversationMemory, MemoryLimits
from services.brain.turns import ReplySink, TurnProcessor
from services.brain.worker import TurnRunner, parse_work
from services.common.deadletter import DeadLetterPublisher
from services.common.diagnostics import install_task_dump
from services.common.http import service_health_router
from services.common.inbox import InboxWriter
from services.common.kafka import ensure_topics_eventually, publish_event, retry_until_done
from services.common.ops import OpsEmitter
from services.common.producer import KafkaProducer
from services.common.redis import make_redis
from services.common.stream_relay import StreamRelay
from shared.contracts import Reply, Stage
from shared.logs import get_logger

log = get_logger("brain")


def build_turn_processor(
    settings: BrainSettings,
    *,
    engine: Engine,
    redis: Redis,
    blocking_redis: Redis,
    ops: OpsEmitter,
    publish: ReplySink,
    memory_cls: type[ConversationMemory] = ConversationMemory,
    locks_cls: type[ConversationLocks] = ConversationLocks,
) -> TurnProcessor:
    """The turn machinery as configured by `settings`.

    `memory_cls` / `locks_cls` let a benchmark wrap timing probes around the real classes.
    """
    memory = memory_cls(
        redis,
        settings.redis_prefix,
        MemoryLimits(settings.memory_max_turns, settings.memory_ttl_s, settings.processed_ttl_s),
    )
    locks = locks_cls(redis, blocking_redis, settings.redis_prefix, settings.lock_ttl_ms)
    return TurnProcessor(
        engine=engine,
        memory=memory,
        locks=locks,
        publish=publish,
        ops=ops,
        apology_text=settings.apology_text,
        summary_max_chars=settings.summary_max_chars,
    )


def create_app(settings: BrainSettings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the brain worker. `engine` overrides the configured one (tests, benchmarks)."""
    settings = settings or BrainSettings()
    topics = settings.topics
    producer = KafkaProducer(settings.kafka_bootstrap_servers, f"brain-{settings.instance_id}")
    redis = make_redis(settings.redis_url)
    # Lock waits block on BLPOP; a client without socket_timeout (see make_redis) for them.
    blocking_redis = make_redis(settings.redis_url, socket_timeout=None)
    ops = OpsEmitter(producer, topics.ops, Stage.BRAIN, settings.instance_id)
    dead_letters = DeadLetterPublisher(producer, topics.dlq_inbound, Stage.BRAIN, ops)
    engine = engine or build_engine(settings)

    relay = (
        StreamRelay(InboxWriter(redis, settings.redis_prefix)) if settings.stream_direct else None
    )

    async def publish_reply(reply: Reply) -> None:
        topic = topics.replies(reply.channel)
        relayed = relay.route(reply) if relay is not None else None
        if relay is None or relayed is None:
            await publish_event(producer, topic, reply)
            return
        # Side by side: the relay's one Redis round trip hides under the acks=all publish.
        await asyncio.gather(relay.post(relayed), publish_event(producer, topic, reply))

    processor = build_turn_processor(
        settings,
        engine=engine,
        redis=redis,
        blocking_redis=blocking_redis,
        ops=ops,
        publish=publish_reply,
    )
    consumer = KeyOrderedConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=topics.inbound,
        group_id=settings.group_id("brain"),
        client_id=f"brain-{settings.instance_id}",
        group_instance_id=settings.kafka_group_instance_id,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        parse=parse_work,
        handle=TurnRunner(processor, dead_letters, settings.max_attempts),
        policy=DoubleTextingPolicy(),
        max_in_flight=settings.max_in_flight,
        drain_timeout_s=settings.drain_timeout_s,
    )

    async def join_group() -> None:
        await ensure_topics_eventually(
            # The core topics only: each channel's reply topic is its own side's to create.
            settings.kafka_bootstrap_servers,
            topics.core(),
            settings.topic_partitions,
            settings.kafka_replication_factor,
            settings.kafka_min_insync_replicas,
        )
        await retry_until_done("consumer", consumer.start)

    async def consuming() -> bool:
        return consumer.healthy

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        install_task_dump()  # kill -USR1: where every task waits, in the log
        await producer.start()
        # Kafka may be down at start: serve /readyz (not ready) and join the group once it
        # answers, rather than crash-loop.
        joining = asyncio.create_task(join_group(), name="brain-join")
        log.info("brain.started", instance_id=settings.instance_id, engine=engine.name)
        try:
            yield
        finally:
            joining.cancel()
            await asyncio.gather(joining, return_exceptions=True)
            await consumer.stop()
            await producer.stop()
            await engine.aclose()
            await redis.aclose()
            await blocking_redis.aclose()
            log.info("brain.stopped", instance_id=settings.instance_id)

    app = FastAPI(title="Switchboard brain", lifespan=lifespan)
    app.include_router(
        service_health_router(
            "brain", producer, redis, settings.wedged_after_s, {"consumer": consuming}
        )
    )
    return app
