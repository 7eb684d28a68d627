"""Egress composition root: one consumer group per registered channel's reply topic, each
delivering through that channel's outbound adapter (`services.channels.registry`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

from aiokafka import ConsumerRecord
from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from services.channels.registry import CHANNELS
from services.channels.sdk.plugin import ChannelPlugin, EgressContext, OutboundAdapter
from services.common.consuming import parse_event, process_reliably
from services.common.deadletter import DeadLetterPublisher
from services.common.diagnostics import install_task_dump
from services.common.http import service_health_router
from services.common.inbox import InboxWriter
from services.common.kafka import ensure_topics_eventually, make_broker, retry_until_done
from services.common.ops import OpsEmitter
from services.common.producer import KafkaProducer
from services.common.redis import make_redis
from services.egress.config import EgressSettings
from services.egress.polling import without_idle_sleep
from shared.contracts import Reply, Stage
from shared.logs import get_logger

log = get_logger("egress")

REPLIES_HANDLED = Counter("switchboard_egress_replies_total", "Replies handled", ["channel"])


def create_app(
    settings: EgressSettings | None = None, channels: Sequence[ChannelPlugin] = CHANNELS
) -> FastAPI:
    """Build the egress worker for `channels` (default: the registry's)."""
    settings = settings or EgressSettings()
    topics = settings.topics
    client_id = f"egress-{settings.instance_id}"
    broker = make_broker(settings.kafka_bootstrap_servers, client_id)  # subscribers only
    producer = KafkaProducer(settings.kafka_bootstrap_servers, client_id)
    redis = make_redis(settings.redis_url)
    ops = OpsEmitter(producer, topics.ops, Stage.EGRESS, settings.instance_id)
    dead_letters = DeadLetterPublisher(producer, topics.dlq_replies, Stage.EGRESS, ops)
    context = EgressContext(
        settings=settings, redis=redis, ops=ops, inbox=InboxWriter(redis, settings.redis_prefix)
    )
    outputs: list[OutboundAdapter] = [
        plugin.build_outbound(context) for plugin in channels if plugin.build_outbound
    ]
    for output in outputs:
        register_reply_consumer(broker, settings, output, dead_letters)
    reply_topics = [topics.replies(output.channel) for output in outputs]

    subscribed = asyncio.Event()

    async def subscribe() -> None:
        await ensure_topics_eventually(
            settings.kafka_bootstrap_servers,
            [*topics.core(), *reply_topics],
            settings.topic_partitions,
            settings.kafka_replication_factor,
            settings.kafka_min_insync_replicas,
        )
        await retry_until_done("subscribers", broker.start)
        subscribed.set()

    async def consuming() -> bool:
        return subscribed.is_set()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        install_task_dump()  # kill -USR1: where every task waits, in the log
        await producer.start()
        # Kafka may be down at start: serve /readyz (not ready) and subscribe once it answers.
        tasks = [
            asyncio.create_task(subscribe(), name="egress-subscribe"),
            *(
                asyncio.create_task(output.run(), name=f"{output.channel}-run")
                for output in outputs
            ),
        ]
        log.info("egress.started", instance_id=settings.instance_id)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await broker.stop()
            await producer.stop()
            for output in outputs:
                await output.close()
            await redis.aclose()
            log.info("egress.stopped", instance_id=settings.instance_id)

    app = FastAPI(title="Switchboard egress", lifespan=lifespan)
    app.include_router(
        service_health_router(
            "egress", producer, redis, settings.wedged_after_s, {"consumer": consuming}
        )
    )
    return app


def register_reply_consumer(
    broker: KafkaBroker,
    settings: EgressSettings,
    output: OutboundAdapter,
    dead_letters: DeadLetterPublisher,
) -> None:
    """Subscribe `output` to its channel's reply topic: commit only after delivery.

    Records come in batches. A batch is split by conversation (the Kafka key): each
    conversation's replies go out in order, different conversations in parallel, so one slow
    send does not hold up every other customer. The batch is committed when all are done.
    """
    channel = output.channel
    subscriber = broker.subscriber(
        settings.topics.replies(channel),
        group_id=settings.group_id(f"egress.{channel}"),
        # Static membership (see BaseServiceSettings.kafka_group_instance_id): one id may
        # serve every channel's group, ids only need to be unique within a group.
        group_instance_id=settings.kafka_group_instance_id,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(1_000, settings.kafka_session_timeout_ms // 4),
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        batch=True,
        max_records=settings.batch_max_records,
        # The long poll returns as soon as a record arrives; FastStream's extra sleep after
        # an empty poll is taken out below, so this only sets how often an idle egress wakes.
        batch_timeout_ms=200,
    )
    without_idle_sleep(subscriber)

    async def deliver_in_order(records: list[ConsumerRecord]) -> None:
        for record in records:

            async def work(record: ConsumerRecord = record) -> None:
                await output.deliver(parse_event(record, Reply))
                REPLIES_HANDLED.labels(channel).inc()

            await process_reliably(record, work, dead_letters, settings.max_attempts)

    @subscriber
    async def on_replies(message: KafkaMessage) -> None:
        by_conversation: dict[tuple[int, bytes | None], list[ConsumerRecord]] = defaultdict(list)
        for record in message.raw_message:
            by_conversation[(record.partition, record.key)].append(record)
        await asyncio.gather(*(deliver_in_order(group) for group in by_conversation.values()))
        await message.ack()
