"""Ingress composition root: `create_app(settings)` wires clients, channels and routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.channels.sdk.publish import InboundPublisher, PublishFailed
from services.channels.sms.inbound import SmsChannel
from services.channels.sms.store import SmsConsent, SmsLedger
from services.channels.voipbin.actions import FETCH_INBOX_KIND
from services.channels.voipbin.client import VoipbinClient
from services.channels.voipbin.inbound.callers import CallResolver
from services.channels.voipbin.inbound.events import VoipbinEvents
from services.channels.voipbin.inbound.fetch import VoipbinFetch
from services.channels.voipbin.store import CallRegistry, FetchClaims
from services.channels.webchat.inbound import WebChatChannel
from services.channels.webchat.store import ChatStore
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

WEB_DIR = Path(__file__).parents[1] / "channels" / "webchat" / "web"
MAX_BODY_BYTES = 256 * 1024


def create_app(settings: IngressSettings | None = None) -> FastAPI:
    """Build the ingress ASGI app. Clients are opened in the lifespan, not here."""
    settings = settings or IngressSettings()
    topics = settings.topics
    producer = KafkaProducer(settings.kafka_bootstrap_servers, f"ingress-{settings.instance_id}")
    redis = make_redis(settings.redis_url)
    ops = OpsEmitter(producer, topics.ops, Stage.INGRESS, settings.instance_id)
    chat_secret = settings.chat_token_secret.get_secret_value().encode()
    signer = TokenSigner(chat_secret, settings.chat_token_ttl_s)
    publisher = InboundPublisher(producer, topics.inbound, ops, settings.publish_timeout_s)
    identity = IdentityResolver(redis, settings.redis_prefix, settings.default_region)
    chat = WebChatChannel(
        signer=signer,
        store=ChatStore(redis, settings.redis_prefix, outbox_ttl_s=settings.chat_outbox_ttl_s),
        publisher=publisher,
        identity=identity,
        ops=ops,
        instance_id=settings.instance_id,
        max_text=settings.chat_max_text,
    )
    sms = SmsChannel(
        twilio=settings,
        publisher=publisher,
        identity=identity,
        consent=SmsConsent(redis, settings.redis_prefix),
        ledger=SmsLedger(redis, settings.redis_prefix),
        ops=ops,
        help_text=settings.sms_help_text,
    )
    voipbin = VoipbinClient(settings, timeout_s=2.0)
    callers = CallResolver(CallRegistry(redis, settings.redis_prefix), voipbin, identity)
    voice_events = VoipbinEvents(settings=settings, resolver=callers, publisher=publisher, ops=ops)
    voice_fetch = VoipbinFetch(
        token=settings.voipbin_fetch_token.get_secret_value(),
        public_base_url=settings.public_base_url,
        resolver=callers,
        publisher=publisher,
        claims=FetchClaims(redis, settings.redis_prefix),
        ops=ops,
        instance_id=settings.instance_id,
        deadline_s=settings.voipbin_fetch_deadline_s,
        hold_ms=settings.voipbin_hold_ms,
        fallback_text=settings.voipbin_fallback_text,
        language=settings.voipbin_language,
        voice_id=settings.voipbin_voice_id,
    )
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
    inbox_redis = make_redis(settings.redis_url, socket_timeout=None)
    inbox = InboxReader(inbox_redis, settings.redis_prefix, settings.instance_id)
    inbox.on("chat", chat.on_inbox_entry)
    inbox.on(FETCH_INBOX_KIND, voice_fetch.on_inbox_entry)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Kafka may be down at start: serve (not ready, webhooks 503) and connect when it is up.
        install_task_dump()  # kill -USR1: where every task waits, in the log
        await producer.start()
        tasks = [
            asyncio.create_task(
                ensure_topics_eventually(
                    settings.kafka_bootstrap_servers, topics.all(), settings.topic_partitions
                ),
                name="topics",
            ),
            asyncio.create_task(inbox.run(), name="inbox"),
            asyncio.create_task(chat.heartbeat(chat.store.holder_ttl_s / 3), name="heartbeat"),
        ]
        log.info("ingress.started", instance_id=settings.instance_id, port=settings.port)
        try:
            yield
        finally:
            await chat.close_all()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await producer.stop()
            await voipbin.aclose()
            await redis.aclose()
            await inbox_redis.aclose()
            log.info("ingress.stopped", instance_id=settings.instance_id)

    # No provider sends more than a few KB: a bigger body is refused (413) before any handler
    # reads it, so nobody can make ingress buffer megabytes per request.
    app = FastAPI(title="Switchboard ingress", lifespan=lifespan, max_body_size=MAX_BODY_BYTES)
    install_dependency_error_handlers(app, PublishFailed)
    app.state.settings = settings
    app.state.chat = chat
    app.include_router(service_health_router("ingress", producer, redis, settings.wedged_after_s))
    app.include_router(chat.router())
    app.include_router(sms.router())
    app.include_router(voice_events.router())
    app.include_router(voice_fetch.router())
    app.include_router(link_router(linking, signer))
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    return app
