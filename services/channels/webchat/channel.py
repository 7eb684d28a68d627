"""The web chat channel as the registry sees it: how ingress and egress build its adapters.

Settings: `INGRESS_CHAT_TOKEN_SECRET`, `INGRESS_CHAT_TOKEN_TTL_S`, `INGRESS_CHAT_MAX_TEXT`
(ingress) and `SWITCHBOARD_CHAT_OUTBOX_TTL_S` (both sides); see the README's table.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from services.channels.sdk.plugin import ChannelPlugin, EgressContext, IngressContext
from services.channels.webchat.inbound import WebChatChannel
from services.channels.webchat.outbound import WebChatOutput
from services.channels.webchat.profile import NAME, chat_profile
from services.channels.webchat.store import ChatStore
from services.channels.webchat.tokens import TokenSigner
from shared.contracts.inbox import ChatDoorbell

WEB_DIR = Path(__file__).parent / "web"
"""The chat page: plain HTML, CSS and JS, no build step."""
PAGE_FILES = {"chat.css": "text/css", "chat.js": "text/javascript"}


class WebChatInbound(WebChatChannel):
    """The socket protocol plus the page that speaks it."""

    def router(self) -> APIRouter:
        """`/v1/chat/...` plus the page at `/` and its two assets under `/static/`."""
        router = APIRouter()
        router.include_router(super().router())

        @router.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html")

        @router.get("/static/{name}", include_in_schema=False)
        async def asset(name: str) -> FileResponse:
            # Only the page's own files: nothing else on disk is reachable by name.
            if name not in PAGE_FILES:
                raise HTTPException(status_code=404)
            return FileResponse(WEB_DIR / name, media_type=PAGE_FILES[name])

        return router


def build_inbound(ctx: IngressContext) -> WebChatInbound:
    """The socket, session tokens and the page, answering replies rung in the inbox."""
    settings = ctx.settings
    chat = WebChatInbound(
        signer=TokenSigner(
            settings.chat_token_secret.get_secret_value().encode(), settings.chat_token_ttl_s
        ),
        store=ChatStore(ctx.redis, settings.redis_prefix, outbox_ttl_s=settings.chat_outbox_ttl_s),
        publisher=ctx.publisher_for(NAME, chat_profile()),
        identity=ctx.identity,
        ops=ctx.ops,
        instance_id=settings.instance_id,
        max_text=settings.chat_max_text,
    )
    ctx.inbox.on(ChatDoorbell, chat.on_inbox_entry)
    return chat


def build_outbound(ctx: EgressContext) -> WebChatOutput:
    """Store each reply in the session's outbox and ring the socket holder's inbox."""
    store = ChatStore(
        ctx.redis, ctx.settings.redis_prefix, outbox_ttl_s=ctx.settings.chat_outbox_ttl_s
    )
    return WebChatOutput(store, ctx.inbox, ctx.ops)


WEBCHAT = ChannelPlugin(name=NAME, build_inbound=build_inbound, build_outbound=build_outbound)
