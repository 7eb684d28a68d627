"""Egress settings (env prefix `EGRESS_`; Twilio and VoIPBin account settings are unprefixed)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.channels.sms.settings import SmsEgressSettings
from services.channels.voipbin.settings import VoipbinSpeakingSettings
from services.channels.webchat.settings import WebChatSettings
from shared.settings import BaseServiceSettings


class EgressSettings(
    BaseServiceSettings, WebChatSettings, SmsEgressSettings, VoipbinSpeakingSettings
):
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

    @model_validator(mode="after")
    def _no_dev_credentials_in_production(self) -> EgressSettings:
        if self.environment != "production":
            return self
        problems = self.voipbin_account_problems()
        if self.uses_dev_credentials():
            problems.insert(0, "TWILIO_AUTH_TOKEN must be set in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self
