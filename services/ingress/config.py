"""Ingress settings (env prefix `INGRESS_`)."""

from __future__ import annotations

import phonenumbers
from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.channels.sms.settings import SmsIngressSettings
from services.channels.voipbin.settings import VoipbinSettings
from services.channels.webchat.settings import DEV_CHAT_SECRET, WebChatIngressSettings
from shared.settings import BaseServiceSettings


class IngressSettings(
    BaseServiceSettings, WebChatIngressSettings, SmsIngressSettings, VoipbinSettings
):
    """Settings of one ingress instance."""

    model_config = SettingsConfigDict(env_prefix="INGRESS_", extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=8000, description="HTTP port (web chat page, webhooks, health).")
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
            problems = self.voipbin_production_problems()
            if problems:
                raise ValueError("; ".join(problems))
        return self
