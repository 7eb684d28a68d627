"""VoIPBin settings, split by who needs them, and the addresses of the voice channel.

- `VoipbinAccountSettings`: the account (API base, accesskey) and the voice; every side.
- `VoipbinSettings`: plus what receiving needs (webhook secret, fetch token, fetch timing);
  ingress and the setup tool.
- `VoipbinSpeakingSettings`: plus egress's speaking policy (retries, waits).

Mixed into a service's settings class: the account fields read unprefixed `VOIPBIN_*`
variables (one `.env` for every side); the timing and policy fields take the service's
prefix (`INGRESS_VOIPBIN_*`, `EGRESS_VOICE_*`). Egress never sees the webhook secret.

Wire format: ../shared/providers.md §1. A Direct Hash is read from the API (it already starts
with `direct.`), never computed: `sip_uri` only wraps it.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator

DEV_ACCESS_KEY = "dev-voipbin-accesskey"
DEV_WEBHOOK_SECRET = "dev-voipbin-webhook-secret-00000"  # noqa: S105 - refused in production
DEV_FETCH_TOKEN = "dev-voipbin-fetch-token"  # noqa: S105 - refused in production
EVENTS_PATH = "/v1/voipbin/events"
FETCH_PATH = "/v1/voipbin/fetch"
SIP_DOMAIN = "sip.voipbin.net"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class VoipbinAccountSettings(BaseModel):
    """The VoIPBin account and voice, which every side uses. The defaults talk to the fake
    VoIPBin that `make run` starts; production refuses them."""

    model_config = ConfigDict(populate_by_name=True)

    voipbin_api_base: str = Field(
        default="https://api.voipbin.net/v1.0",
        validation_alias=_env("VOIPBIN_API_BASE"),
        description="VoIPBin REST base URL, `/v1.0` included (the fake's URL in development).",
    )
    voipbin_access_key: SecretStr = Field(
        default=SecretStr(DEV_ACCESS_KEY),
        validation_alias=_env("VOIPBIN_ACCESS_KEY"),
        description="VoIPBin accesskey, sent as `?accesskey=` (never as a Bearer header).",
    )
    voipbin_language: str = Field(
        default="en-US",
        validation_alias=_env("VOIPBIN_LANGUAGE"),
        description="Language of transcription and speech.",
    )
    voipbin_tts_provider: str = Field(
        default="elevenlabs",
        validation_alias=_env("VOIPBIN_TTS_PROVIDER"),
        description="Speaking API provider (VoIPBin's default is elevenlabs).",
    )
    voipbin_voice_id: str = Field(
        default="",
        validation_alias=_env("VOIPBIN_VOICE_ID"),
        description="Voice of the Speaking API and `talk` (empty: the provider's default).",
    )

    @field_validator("voipbin_api_base")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def voipbin_account_problems(self) -> list[str]:
        """What a production deployment still has at its development value."""
        if self.voipbin_access_key.get_secret_value() == DEV_ACCESS_KEY:
            return ["VOIPBIN_ACCESS_KEY must be set in production"]
        return []


class VoipbinSettings(VoipbinAccountSettings):
    """What receiving VoIPBin's events and fetches needs, on top of the account (ingress,
    the setup tool)."""

    voipbin_webhook_secret: SecretStr = Field(
        default=SecretStr(DEV_WEBHOOK_SECRET),
        validation_alias=_env("VOIPBIN_WEBHOOK_SECRET"),
        description="The customer's `webhook_secret` (`GET /customer`; `switchboard voipbin"
        " setup` prints it): verifies `X-VoIPBIN-Signature` on events.",
    )
    voipbin_allow_unsigned: bool = Field(
        default=False,
        validation_alias=_env("VOIPBIN_ALLOW_UNSIGNED"),
        description="Accept unsigned events (accounts from before 2026-08 do not sign).",
    )
    voipbin_fetch_token: SecretStr = Field(
        default=SecretStr(DEV_FETCH_TOKEN),
        validation_alias=_env("VOIPBIN_FETCH_TOKEN"),
        description="Unguessable path token of the `fetch` endpoint (VoIPBin does not sign"
        " fetch requests). 32+ characters in production.",
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

    def voipbin_production_problems(self) -> list[str]:
        """What a production deployment that receives webhooks still has at development
        values."""
        problems = self.voipbin_account_problems()
        secret = self.voipbin_webhook_secret.get_secret_value()
        if secret == DEV_WEBHOOK_SECRET and not self.voipbin_allow_unsigned:
            problems.append("VOIPBIN_WEBHOOK_SECRET must be set in production")
        token = self.voipbin_fetch_token.get_secret_value()
        if token == DEV_FETCH_TOKEN or len(token) < 32:
            problems.append("VOIPBIN_FETCH_TOKEN must be set (32+ characters) in production")
        return problems


class VoipbinSpeakingSettings(VoipbinAccountSettings):
    """Egress's speaking policy on top of the account."""

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


def fetch_url(public_base_url: str, token: str) -> str:
    """The `event_url` of the flow's `fetch` action (the token makes it unguessable)."""
    return f"{public_base_url.rstrip('/')}{FETCH_PATH}/{token}"


def sip_uri(direct_hash: str) -> str:
    """The SIP URI to dial a Direct Hash; the hash already carries its `direct.` prefix."""
    return f"sip:{direct_hash}@{SIP_DOMAIN}"
