"""What `switchboard vapi setup` wants VAPI to hold: pure builders and comparisons.

- two credentials: the server URL's (a `custom-credential` whose `authenticationPlan` makes
  VAPI sign as VAPI_AUTH_MODE says) and the custom LLM's (`custom-llm`, `apiKey` =
  VAPI_LLM_KEY). VAPI never shows a secret again, so each is named after a fingerprint of
  its content (`switchboard-server-<12 hex>`): the same settings find the same credential,
  new secrets make a new one;
- the assistant (default name `switchboard`): the custom LLM, the server URL with that
  credential, the server messages Switchboard handles, `modelOutputInMessagesEnabled: false`
  (docs/vapi.md, Setup) and live control;
- optionally a phone number: its server is ours and it has no assistant of its own, so an
  inbound call sends `assistant-request` there.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from services.channels.vapi.settings import EVENTS_PATH, LLM_BASE_PATH, VapiSettings

DEFAULT_ASSISTANT_NAME = "switchboard"
MODEL_NAME = "switchboard"
SERVER_MESSAGES = [
    "status-update",
    "end-of-call-report",
    "user-interrupted",
    "speech-update",
    "hang",
    "tool-calls",
    "handoff-destination-request",
]
"""What ingress handles (`assistant-request` is not in the enum: VAPI sends it to the phone
number's server whenever the number has no assistant)."""


def fingerprint(*parts: Any) -> str:
    """12 hex characters naming a credential's content without showing it."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(b"switchboard-vapi-credential:" + text.encode()).hexdigest()[:12]


def server_plan(settings: VapiSettings) -> dict[str, Any]:
    """The `authenticationPlan` that makes VAPI authenticate as ingress expects (providers.md
    3.4). The legacy secret becomes a Bearer plan on `X-Vapi-Secret` without the prefix, as
    VAPI's migration guide maps it (the spec's `Server` has no inline secret any more)."""
    secret = settings.server_secret.get_secret_value()
    if settings.auth_mode == "secret":
        header = settings.auth_header or "X-Vapi-Secret"
        return {
            "type": "bearer",
            "token": secret,
            "headerName": header,
            "bearerPrefixEnabled": False,
        }
    if settings.auth_mode == "bearer":
        return {
            "type": "bearer",
            "token": secret,
            "headerName": settings.auth_header or "Authorization",
            "bearerPrefixEnabled": settings.bearer_prefix,
        }
    plan: dict[str, Any] = {
        "type": "hmac",
        "secretKey": secret,
        "algorithm": settings.hmac_algorithm,
        "signatureHeader": settings.auth_header or "x-signature",
        "timestampHeader": settings.hmac_timestamp_header,
        "includeTimestamp": True,
        "payloadFormat": settings.hmac_payload,
        "signatureEncoding": settings.hmac_encoding,
    }
    if settings.hmac_prefix:
        plan["signaturePrefix"] = settings.hmac_prefix
    return plan


def server_credential(settings: VapiSettings) -> dict[str, Any]:
    """`POST /credential` body of the server URL's credential."""
    plan = server_plan(settings)
    return {
        "provider": "custom-credential",
        "name": f"switchboard-server-{fingerprint('server', plan)}",
        "authenticationPlan": plan,
    }


def llm_credential(settings: VapiSettings) -> dict[str, Any]:
    """`POST /credential` body of the custom LLM's key (sent back to us as Bearer)."""
    key = settings.llm_key.get_secret_value()
    return {
        "provider": "custom-llm",
        "name": f"switchboard-llm-{fingerprint('llm', key)}",
        "apiKey": key,
    }


def events_url(public_url: str) -> str:
    return public_url.rstrip("/") + EVENTS_PATH


def llm_url(public_url: str) -> str:
    return public_url.rstrip("/") + LLM_BASE_PATH


def desired_assistant(
    public_url: str,
    *,
    name: str,
    server_credential_id: str,
    llm_credential_id: str,
    control_auth: bool,
) -> dict[str, Any]:
    """The assistant's fields Switchboard owns (others, e.g. a voice, are left alone)."""
    return {
        "name": name,
        "model": {"provider": "custom-llm", "url": llm_url(public_url), "model": MODEL_NAME},
        "server": {"url": events_url(public_url), "credentialId": server_credential_id},
        "serverMessages": list(SERVER_MESSAGES),
        # False on purpose: VAPI then sends back the transcription of what was actually
        # spoken as the assistant's turns, our record of what the caller heard.
        "modelOutputInMessagesEnabled": False,
        "credentialIds": [llm_credential_id, server_credential_id],
        "monitorPlan": {"controlEnabled": True, "controlAuthenticationEnabled": control_auth},
    }


def desired_number(public_url: str, server_credential_id: str) -> dict[str, Any]:
    """A phone number whose calls ask our server for their assistant."""
    return {
        "assistantId": None,
        "server": {"url": events_url(public_url), "credentialId": server_credential_id},
    }


def _same(current: Any, wanted: Any) -> bool:
    """`wanted` is in `current`: objects by the keys `wanted` names, lists of strings as sets."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(
            _same(current.get(k), v) for k, v in wanted.items()
        )
    if isinstance(wanted, list) and all(isinstance(item, str) for item in wanted):
        return isinstance(current, list) and sorted(current) == sorted(wanted)
    if wanted is None:
        return not current
    return bool(current == wanted)


def changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body that makes `current` hold `wanted` (empty: nothing to do). Objects are
    merged into what is there, so fields set by hand in the dashboard survive."""
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        if _same(current.get(key), value):
            continue
        existing = current.get(key)
        patch[key] = (
            existing | value if isinstance(value, dict) and isinstance(existing, dict) else value
        )
    return patch
