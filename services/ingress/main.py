"""Ingress composition root: `create_app(settings)` wires the core, then mounts every
registered channel's inbound adapter (`services.channels.registry`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI

from services.channels.registry import CHANNELS, channel_names
from services.channels.sdk.plugin import ChannelPlugin, InboundAdapter, IngressContext
from services.channels.sdk.publish import InboundPublisher, PublishFailed
from services.channels.webchat.tokens import TokenSigner
from services.common.diagnostics import install_task_dump
from services.common.errors import install_dependency_error_handlers
from services.common.http import service_health_router
from services.common.inbox import InboxReader
from services.common.kafka import ensure_topics_eventually
from services.common.ops import OpsEmitter
from services.common.producer import KafkaProducer
from services.common.redis import make_redis
from services.ingress.config import IngressSettings
from services.ingress.identity import IdentityResolver
from services.ingress.linking.codes import derive_code_key
from services.ingress.linking.delivery import KafkaReplyPublisher
from services.ingress.linking.routes import link_router
from services.ingress.linking.service import LinkService
from services.ingress.linking.store import LinkLimits, LinkStore
from shared.contracts import Stage
from shared.logs import get_logger

log = get_logger("ingress")

MAX_BODY_BYTES = 256 * 1024


def create_app(
    settings: IngressSettings | None = None, channels: Sequence[ChannelPlugin] = CHANNELS
) -> FastAPI:
    """Build the ingress ASGI app with `channels` mounted (default: the registry's).
    Clients are opened in the lifespan, not here."""
    settings = settings or IngressSettings()
    topics = settings.topics
    producer = KafkaProducer(settings.kafka_bootstrap_servers, f"ingress-{settings.instance_id}")
    redis = make_redis(settings.redis_url)
    ops = OpsEmitter(producer, topics.ops, Stage.INGRESS, settings.instance_id)
    chat_secret = settings.chat_token_secret.get_secret_value().encode()
    publisher = InboundPublisher(producer, topics.inbound, ops, settings.publish_timeout_s)
    identity = IdentityResolver(redis, settings.redis_prefix, settings.default_region)
    inbox_redis = make_redis(settings.redis_url, socket_timeout=None)
    inbox = InboxReader(inbox_redis, settings.redis_prefix, settings.instance_id)
    context = IngressContext(
        settings=settings,
        redis=redis,
        identity=identity,
        publisher=publisher,
        ops=ops,
        inbox=inbox,
    )
    mounted: dict[str, InboundAdapter] = {
        plugin.name: plugin.build_inbound(context) for plugin in channels if plugin.build_inbound
    }
    adapters = list(mounted.values())
    linking = LinkService(
        store=LinkStore(
            redis,
            settings.redis_prefix,
            LinkLimits(
                code_ttl_s=settings.link_code_ttl_s,
                max_attempts=settings.link_max_attempts,
                starts_per_session=settings.link_starts_per_session,
                starts_per_phone=settings.link_starts_per_phone,
                rate_window_s=settings.link_rate_window_s,
            ),
        ),
        identity=identity,
        inbound=publisher,
        send_reply=KafkaReplyPublisher(producer, topics, settings.publish_timeout_s),
        ops=ops,
        code_key=derive_code_key(chat_secret),
        mapping_min_ttl_s=settings.chat_token_ttl_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Kafka may be down at start: serve (not ready, webhooks 503) and connect when it is up.
        install_task_dump()  # kill -USR1: where every task waits, in the log
        await producer.start()
        tasks = [
            asyncio.create_task(
                ensure_topics_eventually(
                    settings.kafka_bootstrap_servers,
                    topics.all(channel_names(tuple(channels))),
                    settings.topic_partitions,
                    settings.kafka_replication_factor,
                    settings.kafka_min_insync_replicas,
                ),
                name="topics",
            ),
            asyncio.create_task(inbox.run(), name="inbox"),
            *(asyncio.create_task(adapter.run()) for adapter in adapters),
        ]
        log.info("ingress.started", instance_id=settings.instance_id, port=settings.port)
        try:
            yield
        finally:
            for adapter in adapters:
                await adapter.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await producer.stop()
            await redis.aclose()
            await inbox_redis.aclose()
            log.info("ingress.stopped", instance_id=settings.instance_id)

    # No provider sends more than a few KB: a bigger body is refused (413) before any handler
    # reads it, so nobody can make ingress buffer megabytes per request.
    app = FastAPI(title="Switchboard ingress", lifespan=lifespan, max_body_size=MAX_BODY_BYTES)
    install_dependency_error_handlers(app, PublishFailed)
    app.state.settings = settings
    app.state.channels = mounted
    app.include_router(service_health_router("ingress", producer, redis, settings.wedged_after_s))
    for adapter in adapters:
        app.include_router(adapter.router())
    app.include_router(link_router(linking, TokenSigner(chat_secret, settings.chat_token_ttl_s)))
    return app
