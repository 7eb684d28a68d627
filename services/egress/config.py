"""Egress settings (env prefix `EGRESS_`; Twilio and VoIPBin account settings are unprefixed)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.channels.sms.twilio import TwilioSettings
from services.channels.voipbin.client import VoipbinSettings
from shared.settings import BaseServiceSettings


class EgressSettings(BaseServiceSettings, TwilioSettings, VoipbinSettings):
    """Settings of one egress worker."""

    model_config = SettingsConfigDict(env_prefix="EGRESS_", extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", description="Interface of the health/metrics server.")
    port: int = Field(default=8002, description="Port of the health/metrics server.")
    max_attempts: int = Field(
        default=5, ge=1, description="Attempts at a failing reply before it is dead-lettered."
    )
    batch_max_records: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="Replies fetched at once; different conversations in a batch go in parallel.",
    )
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

    voice_speech_chars_per_s: float = Field(
        default=15.0,
        gt=0,
        description="Speaking rate assumed to estimate how long a said text plays (a hangup"
        " waits for it).",
    )
    voice_hangup_wait_max_s: float = Field(
        default=10.0,
        ge=0,
        description="Longest wait for queued speech to be heard before an ending call is hung up.",
    )
    voice_state_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="How long 409 STATE_INVALID is retried while a call is not progressing yet"
        " (then the reply is parked).",
    )
    voice_send_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for VoIPBin to answer one request."
    )
    voice_max_attempts: int = Field(
        default=4,
        ge=1,
        description="VoIPBin requests tried on 429/5xx/network errors before the reply is"
        " handed back for a later retry.",
    )
    voice_retry_budget_s: float = Field(
        default=15.0, gt=0, description="Longest time one VoIPBin request is retried."
    )
    voice_backoff_base_s: float = Field(
        default=0.2, gt=0, description="First retry delay ceiling (full jitter, doubling)."
    )
    voice_backoff_cap_s: float = Field(
        default=5.0, gt=0, description="Largest retry delay (Retry-After included)."
    )

    @model_validator(mode="after")
    def _no_dev_credentials_in_production(self) -> EgressSettings:
        if self.environment != "production":
            return self
        problems = self.voipbin_production_problems(receives_webhooks=False)
        if self.uses_dev_credentials():
            problems.insert(0, "TWILIO_AUTH_TOKEN must be set in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self
