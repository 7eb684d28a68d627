"""Where a driven call sends its requests, and with which credentials.

As in VAPI: ``assistant-request`` goes to the phone number's ``server`` (signed with its
``credentialId``, or the legacy inline ``secret``); the other messages go to the assistant's
``server`` (falling back to the phone number's); the custom LLM is ``<model.url>/chat/
completions`` with the organisation's ``custom-llm`` credential (the one among the
assistant's ``credentialIds`` when it names one). A :class:`CallTarget` field that is set
wins over the stored resources, so a test can drive any server without setting VAPI up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.channels.vapi.fake.config import (
    ASSISTANT_REQUEST_TIMEOUT_S,
    LLM_TIMEOUT_S,
    SERVER_TIMEOUT_S,
)
from services.channels.vapi.fake.jsonish import obj
from services.channels.vapi.fake.signing import ServerAuth
from services.channels.vapi.fake.state import FakeVapiState


@dataclass(frozen=True)
class CallTarget:
    """Overrides of what the fake's stored resources say (empty: use the stored ones)."""

    server_url: str = ""
    auth: ServerAuth | None = None
    llm_url: str = ""
    llm_key: str | None = field(default=None, repr=False)
    phone_number_id: str = ""
    assistant_request_timeout_s: float = ASSISTANT_REQUEST_TIMEOUT_S
    server_timeout_s: float = SERVER_TIMEOUT_S
    llm_timeout_s: float = LLM_TIMEOUT_S
    turn_timeout_s: float = 60.0


@dataclass(frozen=True)
class Endpoint:
    """A server URL and how requests to it are authenticated."""

    url: str
    auth: ServerAuth | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = SERVER_TIMEOUT_S


def phone_number(state: FakeVapiState, target: CallTarget) -> dict[str, Any] | None:
    """The number called: the target's, else the organisation's first (oldest)."""
    if target.phone_number_id:
        return state.find("phone-number", target.phone_number_id)
    numbers = state.items("phone-number", secrets=True)
    return numbers[-1] if numbers else None


def auth_of(state: FakeVapiState, server: dict[str, Any]) -> ServerAuth | None:
    """How VAPI signs requests to ``server``: its credential, or its legacy inline secret."""
    credential_id = server.get("credentialId")
    if isinstance(credential_id, str):
        credential = state.find("credential", credential_id)
        plan = (credential or {}).get("authenticationPlan")
        if isinstance(plan, dict):
            return ServerAuth.from_plan(plan, state.config.hmac_timestamp_unit)
    secret = server.get("secret")
    if isinstance(secret, str) and secret:
        return ServerAuth(mode="secret", secret=secret)
    return None


def endpoint_of(state: FakeVapiState, server: Any) -> Endpoint | None:
    """An :class:`Endpoint` for a ``server`` object with a URL, else None."""
    if not isinstance(server, dict) or not isinstance(server.get("url"), str):
        return None
    headers = obj(server.get("headers"))
    timeout = server.get("timeoutSeconds")
    return Endpoint(
        url=server["url"],
        auth=auth_of(state, server),
        headers={str(k): str(v) for k, v in headers.items()},
        timeout_s=float(timeout) if isinstance(timeout, int | float) else SERVER_TIMEOUT_S,
    )


def request_endpoint(
    state: FakeVapiState, target: CallTarget, number: dict[str, Any] | None
) -> Endpoint | None:
    """Where ``assistant-request`` goes."""
    if target.server_url:
        return Endpoint(target.server_url, target.auth, timeout_s=target.server_timeout_s)
    return endpoint_of(state, (number or {}).get("server"))


def events_endpoint(
    state: FakeVapiState,
    target: CallTarget,
    assistant: dict[str, Any],
    fallback: Endpoint | None,
) -> Endpoint | None:
    """Where the other server messages go: the assistant's server, else the number's."""
    found = endpoint_of(state, assistant.get("server"))
    if found is None:
        return fallback
    if found.auth is None and target.auth is not None:
        return Endpoint(found.url, target.auth, found.headers, found.timeout_s)
    return found


def llm_key(state: FakeVapiState, target: CallTarget, assistant: dict[str, Any]) -> str | None:
    """The ``custom-llm`` credential's API key VAPI sends as Bearer to the custom LLM."""
    if target.llm_key is not None:
        return target.llm_key
    credentials = [
        c for c in state.items("credential", secrets=True) if c.get("provider") == "custom-llm"
    ]
    chosen = assistant.get("credentialIds")
    if isinstance(chosen, list):
        named = [c for c in credentials if c["id"] in chosen]
        credentials = named or credentials
    return str(credentials[0]["apiKey"]) if credentials else None


def llm_base(target: CallTarget, assistant: dict[str, Any]) -> str:
    """The custom LLM's base URL: the target's when set, else the assistant's ``model.url``
    (empty when the assistant's model is not a custom LLM)."""
    if target.llm_url:
        return target.llm_url
    model = assistant.get("model")
    if isinstance(model, dict) and model.get("provider") == "custom-llm" and model.get("url"):
        return str(model["url"])
    return ""
