"""SMS settings, split by who needs them.

- `TwilioSettings` (in `twilio.py`): the Twilio account and the public URL; every side.
- `SmsIngressSettings`: plus the channel profile and the HELP answer; ingress.
- `SmsEgressSettings`: plus the sending policy; egress.

Mixed into a service's settings class: the account and profile fields read unprefixed
variables (`TWILIO_*`, `SMS_*`: one `.env` for every side), the others take the service's
prefix (`INGRESS_SMS_HELP_TEXT`, `EGRESS_SMS_*`).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field

from services.channels.sms.twilio import TwilioSettings


class SmsIngressSettings(TwilioSettings):
    """What receiving SMS needs: the profile the brain answers by, and the HELP text."""

    sms_segment_budget: int = Field(
        default=3,
        ge=1,
        le=10,
        validation_alias=AliasChoices("SMS_SEGMENT_BUDGET", "BRAIN_SMS_SEGMENT_BUDGET"),
        description="Most SMS segments one answer may use (the channel profile's budget).",
    )
    sms_collect_window_ms: int = Field(
        default=2000,
        ge=0,
        le=60_000,
        validation_alias=AliasChoices("SMS_COLLECT_WINDOW_MS", "BRAIN_SMS_COLLECT_WINDOW_MS"),
        description="Texts this close together are answered as one turn (the profile's window).",
    )
    sms_help_text: str = Field(
        default="Switchboard demo: text us any question and our assistant answers. "
        "Reply STOP to unsubscribe, START to resubscribe.",
        min_length=1,
        max_length=320,
        description="Answer to HELP/INFO texts (sent as TwiML; keep it within 2 segments).",
    )


class SmsEgressSettings(TwilioSettings):
    """How hard and how fast egress sends."""

    sms_sends_per_second: float = Field(
        default=10.0,
        gt=0,
        description="Send rate per sender across all egress instances (a US long code: 1).",
    )
    sms_send_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for Twilio to answer one send."
    )
    sms_max_send_attempts: int = Field(
        default=20,
        ge=1,
        description="Sends tried on 429/5xx/network errors before parking (budget permitting).",
    )
    sms_retry_budget_s: float = Field(
        default=120.0, gt=0, description="Longest time one reply is retried before parking."
    )
    sms_backoff_base_s: float = Field(
        default=0.5, gt=0, description="First retry delay ceiling (full jitter, doubling)."
    )
    sms_backoff_cap_s: float = Field(
        default=30.0, gt=0, description="Largest retry delay ceiling (Retry-After still wins)."
    )
    sms_bad_number_ttl_s: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        description="How long a number Twilio called undeliverable is not tried again.",
    )
    sms_status_callbacks: bool = Field(
        default=True, description="Ask Twilio for delivery status callbacks (to ingress)."
    )
