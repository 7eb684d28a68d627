"""VAPI settings: the channel's own, read from `VAPI_*` variables by whichever side builds
the channel (ingress or egress), so no other service's settings carry VAPI's secrets.

Development defaults talk to the fake VAPI that `make run` starts; production refuses the
development secrets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SERVER_SECRET = "dev-vapi-server-secret"  # noqa: S105 - refused in production
DEV_LLM_KEY = "dev-vapi-custom-llm-key"

EVENTS_PATH = "/v1/vapi/events"
LLM_BASE_PATH = "/v1/vapi/llm"
"""The custom-LLM `url` VAPI is given (an OpenAI base URL): it posts `<url>/chat/completions`."""


class VapiSettings(BaseSettings):
    """Everything the VAPI channel reads; env prefix `VAPI_`."""

    model_config = SettingsConfigDict(
        env_prefix="VAPI_", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    environment: Literal["development", "production"] = Field(
        default="development",
        validation_alias="SWITCHBOARD_ENV",
        description="`production` refuses the development secrets below.",
    )
    api_base: str = Field(
        default="https://api.vapi.ai", description="VAPI REST base URL (the fake's in tests)."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Private key (Bearer) for VAPI's REST API: outbound calls, setup. Unset:"
        " `make run` starts the fake VAPI.",
    )
    public_key: SecretStr | None = Field(
        default=None,
        description="Public key, sent as Bearer to a call's control URL when the assistant's"
        " monitorPlan requires it.",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        validation_alias="PUBLIC_BASE_URL",
        description="The URL VAPI reaches ingress at (server URL, custom-LLM URL).",
    )
    # -- how VAPI authenticates to us (server URL), providers.md 3.4 --------------------------
    auth_mode: Literal["secret", "bearer", "hmac"] = Field(
        default="secret",
        description="`secret`: the legacy X-Vapi-Secret header; `bearer`: a Bearer credential;"
        " `hmac`: an HMAC credential over the raw body.",
    )
    server_secret: SecretStr = Field(
        default=SecretStr(DEV_SERVER_SECRET),
        description="The shared secret of every auth mode (the token, or the HMAC key).",
    )
    auth_header: str = Field(
        default="",
        description="Header carrying the credential (default per mode: X-Vapi-Secret,"
        " Authorization, x-signature).",
    )
    bearer_prefix: bool = Field(default=True, description="bearer: expect `Bearer <token>`.")
    hmac_algorithm: Literal["sha256", "sha512", "sha1"] = Field(default="sha256")
    hmac_prefix: str = Field(default="", description="hmac: signature prefix, e.g. `sha256=`.")
    hmac_timestamp_header: str = Field(default="x-timestamp")
    hmac_payload: str = Field(
        default="{timestamp}.{body}", description="hmac: what is signed; {timestamp} {body}."
    )
    hmac_encoding: Literal["hex", "base64"] = Field(default="hex")
    hmac_tolerance_s: int = Field(
        default=300, ge=1, description="hmac: accepted clock difference of the timestamp."
    )
    # -- the custom LLM ---------------------------------------------------------------------
    llm_key: SecretStr = Field(
        default=SecretStr(DEV_LLM_KEY),
        description="The `custom-llm` credential's API key VAPI sends as Bearer on LLM calls.",
    )
    filler_after_ms: int = Field(
        default=1500,
        ge=100,
        description="No sentence of the answer by then: stream a short filler (with <flush />).",
    )
    filler_text: str = Field(default="One moment.", min_length=1, max_length=100)
    stream_deadline_s: float = Field(
        default=15.0,
        gt=1,
        le=60,
        description="Longest custom-LLM answer; VAPI gives up after its timeoutSeconds (20).",
    )
    apology_text: str = Field(
        default="Sorry, I'm having trouble right now. Could you say that again?",
        min_length=1,
        max_length=200,
    )
    # -- assistant-request ------------------------------------------------------------------
    greeting_deadline_s: float = Field(
        default=5.0,
        gt=0.5,
        le=6.0,
        description="assistant-request is answered by then (VAPI's hard limit is 7.5 s).",
    )
    fallback_greeting: str = Field(
        default="Hello, thanks for calling. How can I help you today?",
        min_length=1,
        max_length=300,
    )
    voice: str = Field(default="", description="VAPI voice id of the transient assistant.")
    handoff_number: str = Field(
        default="", description="E.164 number a handoff-destination-request is sent to."
    )
    # -- how VAPI answers are spoken (the channel profile) ----------------------------------
    max_spoken_chars: int = Field(default=300, ge=40, le=8000)
    speech_chars_per_s: float = Field(default=15.0, gt=0, le=1000)

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> VapiSettings:
        if self.environment != "production":
            return self
        problems = []
        if self.server_secret.get_secret_value() == DEV_SERVER_SECRET:
            problems.append("VAPI_SERVER_SECRET must be set in production")
        if self.llm_key.get_secret_value() == DEV_LLM_KEY:
            problems.append("VAPI_LLM_KEY must be set in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- assistant-request: the transient assistant's server block ----------------------------
    server_credential_id: str = Field(
        default="",
        max_length=128,
        description="credentialId (bearer or hmac credential) put on the transient"
        " assistant's server URL; empty: the requesting phone number's, if it names one.",
    )
