"""Brain composition root: a consumer group on the inbound topic, plus health endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.brain.config import BrainSettings
from services.brain.engines import Engine, build_engine
from services.brain.memory import ConversationMemory, MemoryLimits
from services.brain.turns import TurnProcessor
from services.common.consuming import parse_event, process_reliably
from services.common.deadletter import DeadLetterPublisher
from services.common.http import health_router, infrastructure_checks
from services.common.kafka import ensure_topics, make_broker
from services.common.ops import OpsEmitter
from services.common.redis import make_redis
from shared.contracts import InboundMessage, Reply, Stage
from shared.logs import get_logger
from shared.tracing import to_headers

log = get_logger("brain")


def create_app(settings: BrainSettings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the brain worker. `engine` overrides the configured one (tests, benchmarks)."""
    settings = settings or BrainSettings()
    topics = settings.topics
    broker = make_broker(settings.kafka_bootstrap_servers, f"brain-{settings.instance_id}")
    redis = make_redis(settings.redis_url)
    ops = OpsEmitter(broker, topics.ops, Stage.BRAIN, settings.instance_id)
    dead_letters = DeadLetterPublisher(broker, topics.dlq_inbound, Stage.BRAIN, ops)
    engine = engine or build_engine(settings)

    async def publish_reply(reply: Reply) -> None:
        await broker.publish(
            reply.model_dump_json().encode(),
            topics.replies(reply.channel),
            key=reply.conversation_id.encode(),
            headers={
                "content-type": "application/json",
                "sb-event": "Reply",
                **to_headers(reply.trace),
            },
        )

    processor = TurnProcessor(
        engine=engine,
        memory=ConversationMemory(
            redis,
            settings.redis_prefix,
            MemoryLimits(
                settings.memory_max_turns, settings.memory_ttl_s, settings.processed_ttl_s
            ),
        ),
        publish=publish_reply,
        ops=ops,
        apology_text=settings.apology_text,
    )
    register_inbound_consumer(broker, settings, processor, dead_letters)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(
            settings.kafka_bootstrap_servers, topics.all(), settings.topic_partitions
        )
        await broker.start()
        log.info("brain.started", instance_id=settings.instance_id, engine=engine.name)
        try:
            yield
        finally:
            await broker.stop()
            await engine.aclose()
            await redis.aclose()
            log.info("brain.stopped", instance_id=settings.instance_id)

    app = FastAPI(title="Switchboard brain", lifespan=lifespan)
    app.include_router(health_router("brain", infrastructure_checks(broker, redis)))
    return app


def register_inbound_consumer(
    broker: KafkaBroker,
    settings: BrainSettings,
    processor: TurnProcessor,
    dead_letters: DeadLetterPublisher,
) -> None:
    """Subscribe the processor to the inbound topic: at-least-once, commit after the reply."""
    subscriber = broker.subscriber(
        settings.topics.inbound,
        group_id=settings.group_id("brain"),
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
    )

    @subscriber
    async def on_inbound(message: KafkaMessage) -> None:
        record = message.raw_message

        async def work() -> None:
            await processor.handle(parse_event(record, InboundMessage))

        await process_reliably(record, work, dead_letters, settings.max_attempts)
        await message.ack()
