"""VoIPBin account settings and addresses every side of the voice channel needs.

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


class VoipbinSettings(BaseModel):
    """VoIPBin account settings, shared by ingress, egress and the setup tool.

    Mixed into each service's settings class; the fields read unprefixed environment
    variables, so one `.env` configures every side. The defaults talk to the fake VoIPBin
    that `make run` starts; production refuses them.
    """

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

    def voipbin_production_problems(self, *, receives_webhooks: bool) -> list[str]:
        """What a production deployment still has at its development value.

        Everyone calls the API (the accesskey); only ingress receives events and fetches.
        """
        problems = []
        if self.voipbin_access_key.get_secret_value() == DEV_ACCESS_KEY:
            problems.append("VOIPBIN_ACCESS_KEY must be set in production")
        if not receives_webhooks:
            return problems
        secret = self.voipbin_webhook_secret.get_secret_value()
        if secret == DEV_WEBHOOK_SECRET and not self.voipbin_allow_unsigned:
            problems.append("VOIPBIN_WEBHOOK_SECRET must be set in production")
        token = self.voipbin_fetch_token.get_secret_value()
        if token == DEV_FETCH_TOKEN or len(token) < 32:
            problems.append("VOIPBIN_FETCH_TOKEN must be set (32+ characters) in production")
        return problems


def fetch_url(public_base_url: str, token: str) -> str:
    """The `event_url` of the flow's `fetch` action (the token makes it unguessable)."""
    return f"{public_base_url.rstrip('/')}{FETCH_PATH}/{token}"


def sip_uri(direct_hash: str) -> str:
    """The SIP URI to dial a Direct Hash; the hash already carries its `direct.` prefix."""
    return f"sip:{direct_hash}@{SIP_DOMAIN}"
