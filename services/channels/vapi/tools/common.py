"""What the VAPI tools share: their settings (the channel's own variables), errors, output."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.channels.vapi.client import VapiClient, VapiError, VapiUnreachable
from services.channels.vapi.settings import VapiSettings
from services.common.backoff import RetryPolicy

TOOL_RETRY = RetryPolicy(max_attempts=2, base_s=0.2, cap_s=1.0, budget_s=5.0)
"""A person is waiting at the terminal: retry once, then say what is wrong."""
FAKE_PRIVATE_KEY = "dev-vapi-private-key"
"""The fake VAPI's default key (services/channels/vapi/fake/config.py), used without a key."""


class VapiToolSettings(VapiSettings):
    """What the VAPI tools read from the environment (the channel's own variables)."""

    model_config = SettingsConfigDict(
        env_prefix="VAPI_", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    fake_vapi_port: int = Field(
        default=8030,
        validation_alias=AliasChoices("FAKE_VAPI_PORT"),
        description="Port of the fake VAPI that `make run` starts without VAPI_API_KEY.",
    )

    @property
    def uses_fake(self) -> bool:
        """No private key: the tools talk to the fake VAPI, as `make run` sets it up."""
        return self.api_key is None

    @property
    def api_url(self) -> str:
        """VAPI_API_BASE, or the fake's on :FAKE_VAPI_PORT when neither it nor a key is set."""
        if self.uses_fake and "api_base" not in self.model_fields_set:
            return f"http://127.0.0.1:{self.fake_vapi_port}"
        return self.api_base

    @property
    def private_key(self) -> str:
        return self.api_key.get_secret_value() if self.api_key else FAKE_PRIVATE_KEY

    def client(self) -> VapiClient:
        """A REST client with the short retry policy of a command line tool."""
        return VapiClient(self, api_key=self.private_key, api_base=self.api_url, retry=TOOL_RETRY)


class SetupError(Exception):
    """The account cannot be set up or used as asked (a message for the operator)."""


def error_line(error: Exception, *, api_base: str, key: str) -> str:
    """One line for the operator; the key never appears in it."""
    if isinstance(error, VapiError) and error.status == 401:
        text = "VAPI refused the key: check VAPI_API_KEY (the private key, not the public one)"
    elif isinstance(error, VapiError):
        text = f"VAPI refused the request: {error}"
    elif isinstance(error, VapiUnreachable):
        text = f"cannot reach VAPI at {api_base} ({error}); is `make run` running?"
    else:
        text = str(error)
    return "error: " + text.replace(key, "***")
