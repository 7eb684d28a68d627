"""The VAPI channel as the registry sees it: how ingress and egress build its adapters.

Settings are the channel's own (`VAPI_*`, `settings.py`), read when a side builds the
channel, so neither service's settings carry VAPI's keys. `vapi_plugin(settings)` builds
the plugin with given settings instead (tests).
"""

from __future__ import annotations

from fastapi import APIRouter

from services.channels.sdk.plugin import ChannelPlugin, EgressContext, IngressContext
from services.channels.vapi.control import VapiControl
from services.channels.vapi.events import VapiEvents
from services.channels.vapi.llm import VapiLlm
from services.channels.vapi.outbound import VapiOutput
from services.channels.vapi.profile import NAME, vapi_profile
from services.channels.vapi.settings import VapiSettings
from services.channels.vapi.store import VapiCalls
from shared.contracts.inbox import HeldAnswer, StreamPart, StreamStop


class VapiInbound:
    """The server URL (events) and the custom LLM, sharing the call store."""

    def __init__(self, events: VapiEvents, llm: VapiLlm) -> None:
        self.events = events
        self.llm = llm

    def router(self) -> APIRouter:
        """`POST /v1/vapi/events` and `POST /v1/vapi/llm/chat/completions`."""
        router = APIRouter()
        router.include_router(self.events.router())
        router.include_router(self.llm.router())
        return router

    async def run(self) -> None:
        """Nothing in the background: answers arrive through the inbox."""
        return None

    async def close(self) -> None:
        """Finish held streams."""
        await self.events.close()
        await self.llm.close()


def vapi_plugin(settings: VapiSettings | None = None) -> ChannelPlugin:
    """The VAPI plugin; `settings` default to the `VAPI_*` environment, read at build time."""

    def build_inbound(ctx: IngressContext) -> VapiInbound:
        vapi = settings or VapiSettings()
        profile = vapi_profile(vapi.max_spoken_chars, vapi.speech_chars_per_s)
        publisher = ctx.publisher_for(NAME, profile)
        calls = VapiCalls(ctx.redis, ctx.settings.redis_prefix)
        instance_id = ctx.settings.instance_id
        events = VapiEvents(
            settings=vapi,
            publisher=publisher,
            identity=ctx.identity,
            calls=calls,
            ops=ctx.ops,
            instance_id=instance_id,
        )
        llm = VapiLlm(
            settings=vapi,
            publisher=publisher,
            calls=calls,
            identity=ctx.identity,
            ops=ctx.ops,
            instance_id=instance_id,
        )
        ctx.inbox.on(HeldAnswer, events.on_held_answer)
        ctx.inbox.on(StreamPart, llm.on_stream_part)
        ctx.inbox.on(StreamStop, llm.on_stream_stop)
        return VapiInbound(events, llm)

    def build_outbound(ctx: EgressContext) -> VapiOutput:
        vapi = settings or VapiSettings()
        return VapiOutput(
            calls=VapiCalls(ctx.redis, ctx.settings.redis_prefix),
            control=VapiControl(vapi),
            inbox=ctx.inbox,
            ops=ctx.ops,
            speech_chars_per_s=vapi.speech_chars_per_s,
        )

    return ChannelPlugin(name=NAME, build_inbound=build_inbound, build_outbound=build_outbound)


VAPI = vapi_plugin()
