"""Constants of VoIPBin's wire format, and the fake's behaviour switches (FakeVoipbinConfig)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr

API_PREFIX = "/v1.0"
SIP_DOMAIN = "sip.voipbin.net"
SIGNATURE_HEADER = "X-Voipbin-Signature"  # Go's canonical form of X-VoIPBIN-Signature
NIL_UUID = "00000000-0000-0000-0000-000000000000"

DEV_ACCESS_KEY = "dev-voipbin-accesskey"
"""The accesskey the fake accepts by default."""
DEV_WEBHOOK_SECRET = "dev-voipbin-webhook-secret-00000"  # noqa: S105 - 32 chars, as VoIPBin's
"""The webhook secret the fake signs events with by default."""
DEV_CUSTOMER_ID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
"""The customer id of the fake's only customer by default."""

# Compact rows on purpose: one name per line would make these lists hard to read.
# fmt: off
ACTION_TYPES = frozenset({
    "amd", "answer", "ai_summary", "ai_talk", "ai_task", "beep", "block", "branch", "call",
    "case_create", "condition_call_digits", "condition_call_status", "condition_datetime",
    "condition_variable", "confbridge_join", "conference_join", "connect", "conversation_send",
    "digits_receive", "digits_send", "echo", "email_send", "empty", "external_media_start",
    "external_media_stop", "fetch", "fetch_flow", "goto", "hangup", "message_send", "mute",
    "play", "queue_join", "recording_start", "recording_stop", "sleep", "stop", "stream_echo",
    "talk", "transcribe_start", "transcribe_stop", "transcribe_recording", "variable_set",
    "webhook_send",
})
"""Every action ``type`` VoIPBin accepts (providers.md 1.3); anything else is rejected."""

ADDRESS_TYPES = frozenset({
    "tel", "sip", "agent", "ai", "ai_team", "extension", "conference", "email", "line",
    "webchat", "web_session", "whatsapp",
})
# fmt: on
"""Every Address ``type`` (providers.md 1.2)."""

CallStatus = Literal["dialing", "ringing", "progressing", "terminating", "canceling", "hangup"]
CALL_STATUSES: tuple[str, ...] = get_args(CallStatus)


class FakeVoipbinConfig(BaseModel):
    """Behaviour switches of the fake VoIPBin; unknown fields are rejected.

    The secrets are :class:`~pydantic.SecretStr`, so they never show in a repr or a JSON dump.
    """

    model_config = ConfigDict(extra="forbid")

    access_key: SecretStr = SecretStr(DEV_ACCESS_KEY)
    webhook_secret: SecretStr | None = SecretStr(DEV_WEBHOOK_SECRET)
    customer_id: str = DEV_CUSTOMER_ID
    latency_ms: int = Field(default=0, ge=0)
    fail_next: int = Field(default=0, ge=0)
    fail_status: Literal[429, 500, 502, 503, 504] = 500
    rate_limit_per_second: int | None = Field(default=None, ge=0)
    retry_after: int | None = Field(default=None, ge=0)
    outbound_call_status: Literal["dialing", "ringing", "progressing"] = "dialing"
    empty_direct_hash: bool = False
    webhook_max_attempts: int = Field(default=3, ge=1)
    webhook_retry_delay_ms: int = Field(default=1000, ge=0)
    webhook_timeout_s: float = Field(default=30.0, gt=0)

    def public(self) -> dict[str, Any]:
        """The config as JSON, with the secrets masked."""
        return self.model_dump(mode="json")
