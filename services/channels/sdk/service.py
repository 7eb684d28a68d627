"""Run a channel as its own service, speaking only the topics.

An integration team that cannot (or will not) ship code into ingress and egress runs its
channel as a separate process:

    service = ChannelService(
        name="kiosk",
        profile=ChannelProfile(text_format=TextFormat.PLAIN, max_chars=500),
        bootstrap_servers="kafka:9092",
        deliver=send_to_kiosk,          # async (Reply) -> None, idempotent per reply_id
    )
    await service.start()
    await service.publish(provider_message_id=..., address=..., text=...)

What it does for the team:
- publishes `InboundMessage`s with the channel's name and profile on the inbound topic,
  keyed by conversation, waiting for Kafka's ack (`publish` raises when there is none);
- creates the channel's reply topic (`<namespace>.reply.<name>.v1`) if it is missing, and
  consumes it in its own consumer group, committing only after `deliver` returned; a reply
  `deliver` keeps failing goes to the replies' dead-letter topic with the reason;
- survives Kafka outages the way the core services do (see `services.common.producer`).

The conversation id of a customer is derived from the channel's identity realm as ingress
derives it (`conversation_for`), so a phone channel's callers share memory with SMS and
voice. Explicit links written by ingress (a chat session verified as a phone's owner) are
not consulted: a separate service sees the default mapping only.

Compatibility: events carry `schema_version`; the topics' `.v1` suffix changes only with a
breaking change, and new contract fields always have defaults (docs/channels.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from services.channels.sdk.identity import default_conversation_id
from services.channels.sdk.publish import build_message
from services.common.cancellation import raise_if_cancelling
from services.common.consuming import parse_event, process_reliably
from services.common.deadletter import DeadLetterPublisher
from services.common.kafka import ensure_topics_eventually, publish_event
from services.common.ops import OpsEmitter
from services.common.producer import KafkaProducer
from shared.contracts import (
    ChannelProfile,
    InboundMessage,
    MessageKind,
    Reply,
    ReplyMode,
    Stage,
)
from shared.logs import get_logger
from shared.topics import Topics

log = get_logger("channel.service")

Deliver = Callable[[Reply], Awaitable[None]]


def conversation_for(name: str, profile: ChannelProfile, address: str) -> str:
    """The conversation ingress would give `address` on a channel with this profile.

    `address` must already be canonical for the realm: E.164 for a phone channel.
    """
    return default_conversation_id(name, address, profile.identity_realm)


class ChannelService:
    """One channel outside the core: publishes its inbound messages, delivers its replies."""

    def __init__(
        self,
        *,
        name: str,
        profile: ChannelProfile,
        bootstrap_servers: str,
        deliver: Deliver,
        namespace: str = "switchboard",
        instance_id: str = "channel",
        partitions: int = 6,
        max_attempts: int = 5,
        publish_timeout_s: float = 10.0,
    ) -> None:
        # Validate the name the way the contracts will, before anything is published.
        InboundMessage.model_validate(
            {"channel": name, "provider_message_id": "-", "address": "-", "conversation_id": "-"}
        )
        self.name = name
        self.profile = profile
        self.topics = Topics(namespace)
        self._bootstrap = bootstrap_servers
        self._deliver = deliver
        self._partitions = partitions
        self._max_attempts = max_attempts
        self._timeout_s = publish_timeout_s
        self._group_id = f"{namespace}.channel.{name}"
        self._producer = KafkaProducer(bootstrap_servers, f"channel-{name}-{instance_id}")
        ops = OpsEmitter(self._producer, self.topics.ops, Stage.EGRESS, instance_id)
        self._dead_letters = DeadLetterPublisher(
            self._producer, self.topics.dlq_replies, Stage.EGRESS, ops
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        """Set once the reply consumer has joined its group and holds partitions."""

    async def start(self) -> None:
        """Connect, create the reply topic if missing, start consuming replies."""
        await self._producer.start()
        await ensure_topics_eventually(
            self._bootstrap, [self.topics.replies(self.name)], self._partitions
        )
        self._consumer = AIOKafkaConsumer(
            self.topics.replies(self.name),
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._consume(), name=f"{self.name}-replies")

    async def stop(self) -> None:
        """Stop consuming (uncommitted replies are redelivered to the next instance)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        await self._producer.stop()

    async def publish(
        self,
        *,
        provider_message_id: str,
        address: str,
        text: str = "",
        kind: MessageKind = MessageKind.TEXT,
        conversation_id: str | None = None,
        reply: ReplyMode | None = None,
    ) -> InboundMessage:
        """Publish one customer message; returns it once Kafka acknowledged it.

        `provider_message_id` is the dedupe key within the channel: publishing the same id
        again (a retry) is answered once.
        """
        message = build_message(
            self.name,
            self.profile,
            kind=kind,
            provider_message_id=provider_message_id,
            address=address,
            conversation_id=conversation_id or conversation_for(self.name, self.profile, address),
            text=text,
            reply=reply,
        )
        await publish_event(self._producer, self.topics.inbound, message, self._timeout_s)
        return message

    async def _consume(self) -> None:
        assert self._consumer is not None
        while True:
            raise_if_cancelling()  # a cancel lost inside a Redis command (gh-86296)
            batches = await self._consumer.getmany(timeout_ms=200, max_records=100)
            if self._consumer.assignment():
                self.ready.set()
            for records in batches.values():
                for record in records:
                    await process_reliably(
                        record, self._work(record), self._dead_letters, self._max_attempts
                    )
            if batches:
                await self._consumer.commit()

    def _work(self, record: ConsumerRecord) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            await self._deliver(parse_event(record, Reply))

        return work
