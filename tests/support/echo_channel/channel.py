"""The echo channel as a registry would list it; the tests add it to the built-in ones."""

from __future__ import annotations

from services.channels.sdk.plugin import ChannelPlugin, EgressContext, IngressContext
from tests.support.echo_channel.inbound import EchoInbound
from tests.support.echo_channel.outbound import EchoOutbox, EchoOutput
from tests.support.echo_channel.profile import NAME, echo_profile


def build_inbound(ctx: IngressContext) -> EchoInbound:
    """`POST /v1/echo/messages`, published with the echo profile."""
    return EchoInbound(ctx.publisher_for(NAME, echo_profile()), ctx.identity)


def build_outbound(ctx: EgressContext) -> EchoOutput:
    """Replies into the per-user outboxes in Redis."""
    return EchoOutput(EchoOutbox(ctx.redis, ctx.settings.redis_prefix), ctx.ops)


ECHO = ChannelPlugin(name=NAME, build_inbound=build_inbound, build_outbound=build_outbound)
