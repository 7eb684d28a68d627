"""Request body checks, as VAPI's class-validator pipe answers them: 400 with a list of messages.

Unknown top-level properties are refused ("property X should not exist"), so a typo in a
setup tool fails loudly instead of being ignored. Only the fields Switchboard uses are
checked in depth; the rest of an assistant is stored as given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from services.channels.vapi.fake.config import SERVER_MESSAGE_TYPES
from services.channels.vapi.fake.errors import ApiError

# fmt: off
ASSISTANT_FIELDS = frozenset({
    "transcriber", "model", "voice", "firstMessage", "firstMessageInterruptionsEnabled",
    "firstMessageMode", "voicemailDetection", "clientMessages", "serverMessages",
    "maxDurationSeconds", "backgroundSound", "modelOutputInMessagesEnabled",
    "transportConfigurations", "observabilityPlan", "credentials", "hooks", "name",
    "voicemailMessage", "endCallMessage", "endCallPhrases", "compliancePlan", "metadata",
    "backgroundSpeechDenoisingPlan", "analysisPlan", "artifactPlan", "startSpeakingPlan",
    "stopSpeakingPlan", "monitorPlan", "credentialIds", "server", "keypadInputPlan",
})
"""The properties of CreateAssistantDTO / UpdateAssistantDTO in VAPI's OpenAPI spec."""
PHONE_NUMBER_FIELDS = frozenset({
    "fallbackDestination", "hooks", "name", "assistantId", "workflowId", "squadId", "server",
})
CALL_FIELDS = frozenset({
    "assistantVersion", "transport", "customers", "name", "schedulePlan", "assistantId",
    "assistant", "assistantOverrides", "squadId", "squad", "squadOverrides", "workflowId",
    "workflow", "workflowOverrides", "phoneNumberId", "phoneNumber", "customerId", "customer",
})
SERVER_FIELDS = frozenset({
    "timeoutSeconds", "credentialId", "staticIpAddressesEnabled", "encryptedPaths", "url",
    "headers", "backoffPlan", "secret",
})
MONITOR_FIELDS = frozenset({
    "listenEnabled", "listenAuthenticationEnabled", "controlEnabled",
    "controlAuthenticationEnabled", "monitorIds",
})
# fmt: on
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")

CredentialExists = Callable[[str], bool]


def _unknown(body: dict[str, Any], allowed: frozenset[str], where: str = "") -> list[str]:
    return [f"property {where}{name} should not exist" for name in body if name not in allowed]


def json_object(payload: Any) -> dict[str, Any]:
    """The body as a JSON object, or 400."""
    if not isinstance(payload, dict):
        raise ApiError(400, ["body must be a JSON object"])
    return payload


def server_problems(server: Any, where: str, known: CredentialExists) -> list[str]:
    """Problems of a ``server`` object (url, credentialId, timeoutSeconds, headers)."""
    if server is None:
        return []
    if not isinstance(server, dict):
        return [f"{where} must be an object"]
    problems = _unknown(server, SERVER_FIELDS, f"{where}.")
    url = server.get("url")
    if url is not None and (not isinstance(url, str) or not URL.match(url)):
        problems.append(f"{where}.url must be a URL address")
    credential = server.get("credentialId")
    if credential is not None and (not isinstance(credential, str) or not known(credential)):
        problems.append(f"{where}.credentialId must be the id of an existing credential")
    timeout = server.get("timeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int | float) or not 1 <= timeout <= 300):
        problems.append(f"{where}.timeoutSeconds must not be less than 1 or greater than 300")
    headers = server.get("headers")
    if headers is not None and not isinstance(headers, dict):
        problems.append(f"{where}.headers must be an object")
    return problems


def model_problems(model: Any) -> list[str]:
    """Problems of an assistant's ``model`` (a custom LLM needs ``url`` and ``model``)."""
    if model is None:
        return []
    if not isinstance(model, dict) or not isinstance(model.get("provider"), str):
        return ["model.provider must be a string"]
    problems: list[str] = []
    if model["provider"] == "custom-llm":
        url = model.get("url")
        if not isinstance(url, str) or not URL.match(url):
            problems.append("model.url must be a URL address")
        if not isinstance(model.get("model"), str) or not model["model"]:
            problems.append("model.model must be a string")
        mode = model.get("metadataSendMode")
        if mode is not None and mode not in ("off", "variable", "destructured"):
            problems.append("model.metadataSendMode must be one of: off, variable, destructured")
    messages = model.get("messages")
    if messages is not None and not isinstance(messages, list):
        problems.append("model.messages must be an array")
    return problems


def assistant_problems(body: dict[str, Any], known: CredentialExists) -> list[str]:
    """Problems of an assistant body (POST, PATCH, or a transient assistant)."""
    problems = _unknown(body, ASSISTANT_FIELDS)
    problems += model_problems(body.get("model"))
    problems += server_problems(body.get("server"), "server", known)
    messages = body.get("serverMessages")
    if messages is not None:
        if not isinstance(messages, list):
            problems.append("serverMessages must be an array")
        else:
            problems += [
                f"each value in serverMessages must be one of the allowed types, got {m!r}"
                for m in messages
                if m not in SERVER_MESSAGE_TYPES
            ]
    flag = body.get("modelOutputInMessagesEnabled")
    if flag is not None and not isinstance(flag, bool):
        problems.append("modelOutputInMessagesEnabled must be a boolean value")
    ids = body.get("credentialIds")
    if ids is not None and (
        not isinstance(ids, list) or not all(isinstance(i, str) and known(i) for i in ids)
    ):
        problems.append("credentialIds must be ids of existing credentials")
    monitor = body.get("monitorPlan")
    if monitor is not None:
        if isinstance(monitor, dict):
            problems += _unknown(monitor, MONITOR_FIELDS, "monitorPlan.")
        else:
            problems.append("monitorPlan must be an object")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 40):
        problems.append("name must be shorter than or equal to 40 characters")
    return problems


def credential_problems(body: dict[str, Any]) -> list[str]:
    """Problems of ``POST /credential`` (custom-llm and custom-credential are checked)."""
    provider = body.get("provider")
    if not isinstance(provider, str) or not provider:
        return ["provider must be a string"]
    if provider == "custom-llm":
        problems = _unknown(body, frozenset({"provider", "apiKey", "name", "authenticationPlan"}))
        if not isinstance(body.get("apiKey"), str) or not body["apiKey"]:
            problems.append("apiKey must be a string")
        return problems
    if provider != "custom-credential":
        return []
    problems = _unknown(
        body, frozenset({"provider", "authenticationPlan", "name", "encryptionPlan"})
    )
    plan = body.get("authenticationPlan")
    if not isinstance(plan, dict) or plan.get("type") not in ("bearer", "hmac", "oauth2"):
        return [*problems, "authenticationPlan.type must be one of: bearer, hmac, oauth2"]
    if plan["type"] == "bearer" and not isinstance(plan.get("token"), str):
        problems.append("authenticationPlan.token must be a string")
    if plan["type"] == "hmac":
        if not isinstance(plan.get("secretKey"), str):
            problems.append("authenticationPlan.secretKey must be a string")
        if plan.get("algorithm") not in ("sha256", "sha512", "sha1"):
            problems.append("authenticationPlan.algorithm must be one of: sha256, sha512, sha1")
        if plan.get("signatureEncoding", "hex") not in ("hex", "base64"):
            problems.append("authenticationPlan.signatureEncoding must be one of: hex, base64")
    return problems


def phone_number_problems(body: dict[str, Any], known: CredentialExists) -> list[str]:
    """Problems of ``PATCH /phone-number/{id}``."""
    problems = _unknown(body, PHONE_NUMBER_FIELDS)
    assistant = body.get("assistantId")
    if assistant is not None and not isinstance(assistant, str):
        problems.append("assistantId must be a string")
    return problems + server_problems(body.get("server"), "server", known)


def call_problems(body: dict[str, Any]) -> list[str]:
    """Problems of ``POST /call`` that need no lookup."""
    problems = _unknown(body, CALL_FIELDS)
    customer = body.get("customer")
    if customer is not None:
        number = customer.get("number") if isinstance(customer, dict) else None
        if not isinstance(number, str) or not E164.match(number):
            problems.append("customer.number must be a valid phone number in the E.164 format")
    if not any(body.get(k) for k in ("assistantId", "assistant", "squadId", "squad")):
        problems.append("Need Either `assistantId`, `assistant`, `squadId`, or `squad`.")
    return problems
