"""The fake Twilio's constants and behaviour switches (:class:`FakeTwilioConfig`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEV_ACCOUNT_SID = "AC" + "0" * 32
"""The account SID the fake accepts by default."""
DEV_AUTH_TOKEN = "dev-twilio-auth-token"  # noqa: S105 - a well-known dev credential, not a secret
"""The auth token the fake accepts (and signs callbacks with) by default."""

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
MAX_PAGE_SIZE = 1000
CALLBACK_TIMEOUT_S = 15.0  # Twilio's own webhook budget (providers.md 2.3)


class FakeTwilioConfig(BaseModel):
    """Behaviour switches of the fake Twilio; unknown fields are rejected.

    ``auth_token`` is a :class:`~pydantic.SecretStr` so it never shows in a repr or a JSON
    dump; read it with ``get_secret_value()``.
    """

    model_config = ConfigDict(extra="forbid")

    account_sid: str = DEV_ACCOUNT_SID
    auth_token: SecretStr = SecretStr(DEV_AUTH_TOKEN)
    latency_ms: int = Field(default=0, ge=0)
    hold_after_accept_ms: int = Field(default=0, ge=0)
    fail_next: int = Field(default=0, ge=0)
    fail_status: int = Field(default=500, ge=400, le=599)
    fail_code: int | None = None
    error_for_numbers: dict[str, int] = Field(default_factory=dict)
    rate_limit_per_second: int | None = Field(default=None, ge=0)
    status_callbacks: bool = True
    callback_delay_ms: int = Field(default=50, ge=0)
    callback_final_status: Literal["delivered", "undelivered", "failed"] = "delivered"
    callback_error_code: int | None = None

    def public(self) -> dict[str, Any]:
        """The config as JSON, with the auth token masked."""
        return self.model_dump(mode="json")
