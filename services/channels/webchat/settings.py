"""Web chat settings, split by who needs them.

- `WebChatSettings`: how long replies wait in a session's outbox; ingress and egress.
- `WebChatIngressSettings`: plus the session tokens and the message limit; ingress.

Mixed into a service's settings class (`INGRESS_CHAT_*` take the service's prefix).
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr

DEV_CHAT_SECRET = "dev-only-chat-token-secret-change-me"  # noqa: S105 - refused in production


class WebChatSettings(BaseModel):
    """The outbox, which egress fills and ingress drains."""

    model_config = ConfigDict(populate_by_name=True)

    chat_outbox_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        validation_alias=AliasChoices("CHAT_OUTBOX_TTL_S"),
        description="How long web chat replies wait for a browser that is not connected.",
    )


class WebChatIngressSettings(WebChatSettings):
    """Session tokens and the longest message, which only ingress needs."""

    chat_token_secret: SecretStr = Field(
        default=SecretStr(DEV_CHAT_SECRET),
        description="HMAC key signing chat session tokens; the same on every ingress instance.",
    )
    chat_token_ttl_s: int = Field(default=24 * 3600, ge=60, description="Chat token lifetime.")
    chat_max_text: int = Field(default=4000, ge=1, le=8000, description="Longest chat message.")
