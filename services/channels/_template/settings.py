"""The Template channel's settings:
`TEMPLATE_*` environment variables,
read when the adapters are built (never at import)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TemplateSettings(BaseSettings):
    """What the Template channel needs to know of its provider account."""

    model_config = SettingsConfigDict(
        env_prefix="TEMPLATE_",
        extra="ignore",
        env_ignore_empty=True,
    )

    signing_secret: SecretStr = Field(
        default=SecretStr(""),
        description="The secret the provider signs its webhooks with (HMAC-SHA256 of the raw"
        " body, hex). Empty: every webhook is refused.",
    )
