"""The Template channel as the registry sees it:
how ingress and egress build its adapters.

Settings: `TEMPLATE_SIGNING_SECRET` (settings.py).
"""

from __future__ import annotations

from services.channels._template.inbound import (
    TemplateInbound,
)
from services.channels._template.outbound import (
    TemplateOutput,
)
from services.channels._template.profile import (
    NAME,
    template_profile,
)
from services.channels._template.settings import (
    TemplateSettings,
)
from services.channels.sdk.plugin import ChannelPlugin, EgressContext, IngressContext


def build_inbound(ctx: IngressContext) -> TemplateInbound:
    """The provider's signed webhook, publishing through the channel's `ChannelPublisher`."""
    settings = TemplateSettings()
    return TemplateInbound(
        secret=settings.signing_secret.get_secret_value(),
        publisher=ctx.publisher_for(NAME, template_profile()),
        identity=ctx.identity,
        ops=ctx.ops,
    )


def build_outbound(ctx: EgressContext) -> TemplateOutput:
    """Delivery of the brain's replies (parks them until it is written)."""
    return TemplateOutput(ctx.ops)


TEMPLATE = ChannelPlugin(
    name=NAME,
    build_inbound=build_inbound,
    build_outbound=build_outbound,
)
