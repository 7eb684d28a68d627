"""Ingress settings (env prefix `INGRESS_`)."""

from __future__ import annotations

import phonenumbers
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.channels.sms.twilio import TwilioSettings
from services.channels.voipbin.client import VoipbinSettings
from shared.settings import BaseServiceSettings

DEV_CHAT_SECRET = "dev-only-chat-token-secret-change-me"  # noqa: S105 - refused in production


class IngressSettings(BaseServiceSettings, TwilioSettings, VoipbinSettings):
    """Settings of one ingress instance."""

    model_config = SettingsConfigDict(env_prefix="INGRESS_", extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=8000, description="HTTP port (web chat page, webhooks, health).")
    chat_token_secret: SecretStr = Field(
        default=SecretStr(DEV_CHAT_SECRET),
        description="HMAC key signing chat session tokens; the same on every ingress instance.",
    )
    chat_token_ttl_s: int = Field(default=24 * 3600, ge=60, description="Chat token lifetime.")
    chat_max_text: int = Field(default=4000, ge=1, le=8000, description="Longest chat message.")
    publish_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for Kafka to acknowledge an inbound event."
    )
    default_region: str = Field(
        default="US",
        description="ISO 3166 region assumed for phone numbers written without `+<country>`.",
    )
    link_code_ttl_s: int = Field(
        default=600, ge=1, le=3600, description="Lifetime of a chat-to-phone link code."
    )
    link_max_attempts: int = Field(
        default=5, ge=1, le=10, description="Wrong codes allowed before a pending link is burned."
    )
    link_starts_per_session: int = Field(
        default=3, ge=1, description="Link codes one chat session may request per rate window."
    )
    link_starts_per_phone: int = Field(
        default=5, ge=1, description="Link codes one phone number may receive per rate window."
    )
    link_rate_window_s: int = Field(
        default=3600, ge=1, description="Window of the link-code rate limits (fixed window)."
    )

    sms_help_text: str = Field(
        default="Switchboard demo: text us any question and our assistant answers. "
        "Reply STOP to unsubscribe, START to resubscribe.",
        min_length=1,
        max_length=320,
        description="Answer to HELP/INFO texts (sent as TwiML; keep it within 2 segments).",
    )

    voipbin_fetch_deadline_s: float = Field(
        default=3.0,
        ge=0.5,
        le=30.0,
        description="A VoIPBin `fetch` is answered within this: the brain's answer, or a fallback.",
    )
    voipbin_hold_ms: int = Field(
        default=30_000,
        ge=1_000,
        description="`digits_receive` wait between fetch rounds (keys pressed end it early).",
    )
    voipbin_fallback_text: str = Field(
        default="Hello, thanks for calling. How can I help you today?",
        min_length=1,
        max_length=300,
        description="Greeting spoken when the brain's greeting misses the fetch deadline.",
    )

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"INGRESS_DEFAULT_REGION {value!r} is not a known region code")
        return region

    @model_validator(mode="after")
    def _no_dev_secret_in_production(self) -> IngressSettings:
        secret = self.chat_token_secret.get_secret_value()
        if self.environment == "production" and (secret == DEV_CHAT_SECRET or len(secret) < 32):
            raise ValueError("INGRESS_CHAT_TOKEN_SECRET must be set (32+ chars) in production")
        if self.environment == "production" and self.uses_dev_credentials():
            raise ValueError("TWILIO_AUTH_TOKEN must be set in production")
        if self.environment == "production":
            problems = self.voipbin_production_problems(receives_webhooks=True)
            if problems:
                raise ValueError("; ".join(problems))
        return self
