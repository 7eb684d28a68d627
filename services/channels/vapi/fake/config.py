"""Constants of VAPI's wire format, and the fake's behaviour switches (FakeVapiConfig)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEV_PRIVATE_KEY = "dev-vapi-private-key"
"""The private (REST) key the fake accepts by default."""
DEV_PUBLIC_KEY = "dev-vapi-public-key"
"""The public key a control URL asks for when control authentication is on."""
DEV_ORG_ID = "4f1b6c2e-9d3a-4e5f-8a7b-0c1d2e3f4a5b"
DEV_PHONE_NUMBER_ID = "8c5e2a10-7b3d-4f6e-9a1c-2d3e4f5a6b7c"
DEV_PHONE_NUMBER = "+15550001000"
"""The phone number the fake's organisation owns from the start (VAPI numbers are bought
or imported in the dashboard, never created by Switchboard)."""

ASSISTANT_REQUEST_TIMEOUT_S = 7.5
"""VAPI's hard end-to-end deadline for answering `assistant-request` (providers.md 3.3)."""
SERVER_TIMEOUT_S = 20.0
"""`server.timeoutSeconds` default."""
LLM_TIMEOUT_S = 20.0
"""`model.timeoutSeconds` default of a custom LLM."""

# The serverMessages enum of CreateAssistantDTO (VAPI's OpenAPI spec).
# fmt: off
SERVER_MESSAGE_TYPES = frozenset({
    "assistant.started", "assistant.speechStarted", "conversation-update", "end-of-call-report",
    "function-call", "hang", "language-changed", "language-change-detected", "model-output",
    "phone-call-control", "speech-update", "status-update", "transcript",
    'transcript[transcriptType="final"]', "tool-calls", "transfer-destination-request",
    "handoff-destination-request", "transfer-update", "user-interrupted", "voice-input",
    "chat.created", "chat.deleted", "session.created", "session.updated", "session.deleted",
    "call.deleted", "call.delete.failed", "call.artifact.upload",
})
DEFAULT_SERVER_MESSAGES = (
    "conversation-update", "end-of-call-report", "function-call", "hang", "speech-update",
    "status-update", "tool-calls", "transfer-destination-request", "handoff-destination-request",
    "user-interrupted", "assistant.started",
)
"""What VAPI sends when an assistant sets no `serverMessages` (providers.md 3.2)."""
# fmt: on

CONTROL_TYPES = frozenset({"say", "add-message", "end-call", "transfer", "control", "handoff"})
"""Live Call Control message types (providers.md 3.6)."""


class PhoneNumberSeed(BaseModel):
    """A phone number the fake's organisation owns when it starts (or after a reset)."""

    model_config = ConfigDict(extra="forbid")

    id: str = DEV_PHONE_NUMBER_ID
    number: str = DEV_PHONE_NUMBER
    name: str = "Fake VAPI number"


class FakeVapiConfig(BaseModel):
    """Behaviour switches of the fake VAPI; unknown fields are rejected.

    The keys are :class:`~pydantic.SecretStr`, so they never show in a repr or a JSON dump.
    """

    model_config = ConfigDict(extra="forbid")

    private_key: SecretStr = SecretStr(DEV_PRIVATE_KEY)
    public_key: SecretStr = SecretStr(DEV_PUBLIC_KEY)
    org_id: str = DEV_ORG_ID
    phone_numbers: list[PhoneNumberSeed] = Field(default_factory=lambda: [PhoneNumberSeed()])
    public_url: str = Field(
        default="",
        description="Base URL of the fake as others reach it (control URLs); empty: its own.",
    )
    latency_ms: int = Field(default=0, ge=0)
    fail_next: int = Field(default=0, ge=0)
    fail_status: Literal[429, 500, 502, 503, 504] = 500
    rate_limit_per_second: int | None = Field(default=None, ge=0)
    retry_after: int | None = Field(default=1, ge=0)
    control_auth_required: bool = Field(
        default=False,
        description="Every control URL wants `Authorization: Bearer <public key>` (VAPI asks"
        " only when the assistant's monitorPlan.controlAuthenticationEnabled is true).",
    )
    hmac_timestamp_unit: Literal["ms", "s"] = Field(
        default="ms",
        description="Unit of the HMAC timestamp header (undocumented by VAPI, providers.md 3.4).",
    )

    def public(self) -> dict[str, Any]:
        """The config as JSON, with the keys masked."""
        return self.model_dump(mode="json")
