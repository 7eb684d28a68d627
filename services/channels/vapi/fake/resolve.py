"""Which assistant runs a call (the ``assistant-request`` answer, providers.md 3.3), what it
says first, and the custom-LLM request VAPI builds from it (providers.md 3.5)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from services.channels.vapi.fake.jsonish import obj
from services.channels.vapi.fake.result import SentMessage
from services.channels.vapi.fake.state import FakeVapiState
from services.channels.vapi.fake.validate import assistant_problems

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


@dataclass
class Resolution:
    """The assistant of a call, or why the call ends before it starts."""

    assistant: dict[str, Any] | None = None
    ended_reason: str | None = None
    spoken: str = ""
    note: str = ""


def effective(assistant: dict[str, Any], overrides: Any) -> dict[str, Any]:
    """The assistant with ``assistantOverrides`` applied (top-level fields replaced)."""
    if not isinstance(overrides, dict):
        return dict(assistant)
    merged = dict(assistant) | {k: v for k, v in overrides.items() if k != "variableValues"}
    if isinstance(overrides.get("variableValues"), dict):
        merged["_variableValues"] = overrides["variableValues"]
    return merged


def resolve_answer(state: FakeVapiState, sent: SentMessage) -> Resolution:
    """What VAPI does with the ``assistant-request`` answer (its 7.5 s deadline already
    applied by the caller: a timeout arrives here as an error)."""
    if sent.error or sent.status_code is None:
        return Resolution(ended_reason="assistant-request-failed", note=sent.error)
    answer = sent.response
    if not isinstance(answer, dict):
        return Resolution(ended_reason="assistant-request-returned-invalid-assistant")
    if answer.get("error"):
        error = answer["error"]
        if not isinstance(error, str):
            return Resolution(ended_reason="assistant-request-returned-unspeakable-error")
        return Resolution(ended_reason="assistant-request-returned-error", spoken=error)
    if answer.get("destination"):
        destination = answer["destination"]
        spoken = destination.get("message", "") if isinstance(destination, dict) else ""
        return Resolution(
            ended_reason="assistant-request-returned-forwarding-phone-number",
            spoken=str(spoken or ""),
        )
    overrides = answer.get("assistantOverrides")
    if isinstance(answer.get("assistantId"), str):
        stored = state.find("assistant", answer["assistantId"])
        if stored is None:
            return Resolution(ended_reason="assistant-not-found")
        return Resolution(assistant=effective(stored, overrides))
    if isinstance(answer.get("assistant"), dict):
        known = lambda ident: state.find("credential", ident) is not None  # noqa: E731
        problems = assistant_problems(answer["assistant"], known)
        if problems:
            return Resolution(
                ended_reason="assistant-request-returned-invalid-assistant",
                note="; ".join(problems),
            )
        return Resolution(assistant=effective(answer["assistant"], overrides))
    if any(answer.get(k) for k in ("squadId", "squad", "workflowId", "workflow")):
        return Resolution(
            ended_reason="assistant-request-returned-invalid-assistant",
            note="squads and workflows are not modelled by the fake",
        )
    return Resolution(ended_reason="assistant-request-returned-no-assistant")


def substitute(text: str, assistant: dict[str, Any]) -> str:
    """``{{name}}`` replaced by ``variableValues`` (unknown names are left as they are)."""
    values = assistant.get("_variableValues") or {}
    return _VARIABLE.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)


def first_message(assistant: dict[str, Any]) -> str:
    """What the assistant says when the call connects (empty when it waits for the caller)."""
    if assistant.get("firstMessageMode") == "assistant-waits-for-user":
        return ""
    text = assistant.get("firstMessage")
    return substitute(text, assistant) if isinstance(text, str) else ""


def llm_body(
    assistant: dict[str, Any],
    history: list[dict[str, str]],
    call: dict[str, Any],
    number: dict[str, Any] | None,
) -> dict[str, Any]:
    """The body VAPI posts to ``<model.url>/chat/completions``: the model's own messages
    (the system prompt) and the conversation so far, plus the call's metadata as
    ``metadataSendMode`` says (``variable`` by default)."""
    model = obj(assistant.get("model"))
    prompt = [m for m in model.get("messages") or [] if isinstance(m, dict)]
    body: dict[str, Any] = {
        "model": model.get("model", ""),
        "messages": [*prompt, *history],
        "temperature": model.get("temperature", 0.7),
        "max_tokens": model.get("maxTokens", 250),
        "stream": True,
    }
    if model.get("tools"):
        body["tools"] = model["tools"]
    mode = model.get("metadataSendMode", "variable")
    if mode == "off":
        return body
    metadata = obj(assistant.get("metadata"))
    meta: dict[str, Any] = {"call": call}
    if number is not None:
        meta["phoneNumber"] = number
    if isinstance(call.get("customer"), dict):
        meta["customer"] = call["customer"]
    if mode == "destructured":
        return body | meta | metadata
    return body | meta | {"metadata": metadata}
