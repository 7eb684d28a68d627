"""Egress settings (env prefix `EGRESS_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import BaseServiceSettings


class EgressSettings(BaseServiceSettings):
    """Settings of one egress worker."""

    model_config = SettingsConfigDict(env_prefix="EGRESS_", extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", description="Interface of the health/metrics server.")
    port: int = Field(default=8002, description="Port of the health/metrics server.")
    max_attempts: int = Field(
        default=5, ge=1, description="Attempts at a failing reply before it is dead-lettered."
    )
