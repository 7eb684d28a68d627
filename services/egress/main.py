"""Egress composition root: one consumer group per channel's reply topic, plus health."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

from aiokafka import ConsumerRecord
from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from services.channels.sdk.outbound import OutputChannel
from services.channels.sms.client import TwilioClient
from services.channels.sms.outbound import SendPolicy, SmsOutput
from services.channels.sms.rate_limit import SenderRateLimit
from services.channels.sms.store import SmsConsent, SmsLedger
from services.channels.voipbin.client import RetryPolicy, VoipbinClient
from services.channels.voipbin.outbound import HangupSchedule, VoiceOutput, VoicePolicy
from services.channels.voipbin.store import CallRegistry, FetchClaims, ReplyLedger
from services.channels.webchat.outbound import WebChatOutput
from services.channels.webchat.store import ChatStore
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
from shared.contracts import Reply, Stage
from shared.logs import get_logger

log = get_logger("egress")

REPLIES_HANDLED = Counter("switchboard_egress_replies_total", "Replies handled", ["channel"])


def create_app(settings: EgressSettings | None = None) -> FastAPI:
    """Build the egress worker."""
    settings = settings or EgressSettings()
    topics = settings.topics
    client_id = f"egress-{settings.instance_id}"
    broker = make_broker(settings.kafka_bootstrap_servers, client_id)  # subscribers only
    producer = KafkaProducer(settings.kafka_bootstrap_servers, client_id)
    redis = make_redis(settings.redis_url)
    ops = OpsEmitter(producer, topics.ops, Stage.EGRESS, settings.instance_id)
    dead_letters = DeadLetterPublisher(producer, topics.dlq_replies, Stage.EGRESS, ops)
    twilio = TwilioClient(settings, timeout_s=settings.sms_send_timeout_s)
    voipbin = VoipbinClient(
        settings,
        timeout_s=settings.voice_send_timeout_s,
        retry=RetryPolicy(
            max_attempts=settings.voice_max_attempts,
            base_s=settings.voice_backoff_base_s,
            cap_s=settings.voice_backoff_cap_s,
            budget_s=settings.voice_retry_budget_s,
        ),
    )
    inbox = InboxWriter(redis, settings.redis_prefix)
    outputs: list[OutputChannel] = [
        WebChatOutput(
            ChatStore(redis, settings.redis_prefix, outbox_ttl_s=settings.chat_outbox_ttl_s),
            inbox,
            ops,
        ),
        SmsOutput(
            client=twilio,
            # Another instance waits this long for a send in flight elsewhere to finish.
            ledger=SmsLedger(
                redis, settings.redis_prefix, lease_ms=int(2_000 * settings.sms_send_timeout_s)
            ),
            consent=SmsConsent(redis, settings.redis_prefix, settings.sms_bad_number_ttl_s),
            rate_limit=SenderRateLimit(redis, settings.redis_prefix, settings.sms_sends_per_second),
            ops=ops,
            sender=settings.sender,
            status_callback=settings.status_callback_url if settings.sms_status_callbacks else None,
            owner=settings.instance_id,
            policy=SendPolicy(
                max_attempts=settings.sms_max_send_attempts,
                retry_budget_s=settings.sms_retry_budget_s,
                backoff_base_s=settings.sms_backoff_base_s,
                backoff_cap_s=settings.sms_backoff_cap_s,
            ),
        ),
        voice := VoiceOutput(
            client=voipbin,
            hangups=HangupSchedule(redis, settings.redis_prefix),
            calls=CallRegistry(redis, settings.redis_prefix),
            ledger=ReplyLedger(redis, settings.redis_prefix),
            claims=FetchClaims(redis, settings.redis_prefix),
            inbox=inbox,
            ops=ops,
            policy=VoicePolicy(
                language=settings.voipbin_language,
                tts_provider=settings.voipbin_tts_provider,
                voice_id=settings.voipbin_voice_id,
                chars_per_s=settings.voice_speech_chars_per_s,
                hangup_wait_max_s=settings.voice_hangup_wait_max_s,
                state_wait_s=settings.voice_state_wait_s,
            ),
        ),
    ]
    for output in outputs:
        register_reply_consumer(broker, settings, output, dead_letters)

    subscribed = asyncio.Event()

    async def subscribe() -> None:
        await ensure_topics_eventually(
            settings.kafka_bootstrap_servers, topics.all(), settings.topic_partitions
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
            asyncio.create_task(voice.run_hangups(), name="voice-hangups"),
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
            await twilio.aclose()
            await voipbin.aclose()
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
    output: OutputChannel,
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
        group_id=settings.group_id(f"egress.{channel.value}"),
        # Static membership (see BaseServiceSettings.kafka_group_instance_id): one id may
        # serve every channel's group, ids only need to be unique within a group.
        group_instance_id=settings.kafka_group_instance_id,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(1_000, settings.kafka_session_timeout_ms // 4),
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        batch=True,
        max_records=settings.batch_max_records,
        # FastStream sleeps this long again after an empty poll: at 100 ms an idle egress
        # added up to 100 ms to a reply (voice benchmark); 20 ms costs ~50 empty polls/s.
        batch_timeout_ms=20,
    )

    async def deliver_in_order(records: list[ConsumerRecord]) -> None:
        for record in records:

            async def work(record: ConsumerRecord = record) -> None:
                await output.deliver(parse_event(record, Reply))
                REPLIES_HANDLED.labels(channel.value).inc()

            await process_reliably(record, work, dead_letters, settings.max_attempts)

    @subscriber
    async def on_replies(message: KafkaMessage) -> None:
        by_conversation: dict[tuple[int, bytes | None], list[ConsumerRecord]] = defaultdict(list)
        for record in message.raw_message:
            by_conversation[(record.partition, record.key)].append(record)
        await asyncio.gather(*(deliver_in_order(group) for group in by_conversation.values()))
        await message.ack()
