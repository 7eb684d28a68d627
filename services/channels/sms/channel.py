"""The SMS channel as the registry sees it: how ingress and egress build its adapters.

Settings: the Twilio account (`TWILIO_*`), `PUBLIC_BASE_URL`, the profile's
`SMS_SEGMENT_BUDGET` and `SMS_COLLECT_WINDOW_MS`, `INGRESS_SMS_HELP_TEXT` and the sending
policy `EGRESS_SMS_*`; see the README's table.
"""

from __future__ import annotations

from services.channels.sdk.plugin import ChannelPlugin, EgressContext, IngressContext
from services.channels.sms.client import TwilioClient
from services.channels.sms.inbound import SmsChannel
from services.channels.sms.outbound import SmsOutput
from services.channels.sms.profile import NAME, sms_profile
from services.channels.sms.rate_limit import SenderRateLimit
from services.channels.sms.store import SmsConsent, SmsLedger
from services.common.backoff import RetryPolicy


def build_inbound(ctx: IngressContext) -> SmsChannel:
    """Twilio's signed inbound-message and status-callback webhooks."""
    settings = ctx.settings
    profile = sms_profile(settings.sms_segment_budget, settings.sms_collect_window_ms)
    return SmsChannel(
        twilio=settings,
        publisher=ctx.publisher_for(NAME, profile),
        identity=ctx.identity,
        consent=SmsConsent(ctx.redis, settings.redis_prefix),
        ledger=SmsLedger(ctx.redis, settings.redis_prefix),
        ops=ctx.ops,
        help_text=settings.sms_help_text,
    )


def build_outbound(ctx: EgressContext) -> SmsOutput:
    """Sends through Twilio's Messages API, once per reply, within the sender's rate."""
    settings, redis, prefix = ctx.settings, ctx.redis, ctx.settings.redis_prefix
    return SmsOutput(
        client=TwilioClient(settings, timeout_s=settings.sms_send_timeout_s),
        # Another instance waits this long for a send in flight elsewhere to finish.
        ledger=SmsLedger(redis, prefix, lease_ms=int(2_000 * settings.sms_send_timeout_s)),
        consent=SmsConsent(redis, prefix, settings.sms_bad_number_ttl_s),
        rate_limit=SenderRateLimit(redis, prefix, settings.sms_sends_per_second),
        ops=ctx.ops,
        sender=settings.sender,
        status_callback=settings.status_callback_url if settings.sms_status_callbacks else None,
        owner=settings.instance_id,
        policy=RetryPolicy(
            max_attempts=settings.sms_max_send_attempts,
            base_s=settings.sms_backoff_base_s,
            cap_s=settings.sms_backoff_cap_s,
            budget_s=settings.sms_retry_budget_s,
        ),
    )


SMS = ChannelPlugin(name=NAME, build_inbound=build_inbound, build_outbound=build_outbound)
