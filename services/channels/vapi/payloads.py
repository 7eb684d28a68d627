"""What the events endpoint accepts from VAPI: `{"message": {"type", "call", "timestamp", ...}}`
(providers.md §3.1-3.2).

A valid credential proves who sent a body, not that it is sane, so the body is parsed with
`loads_untrusted` (depth, number and surrogate limits) and every field the endpoint reads is
checked here for its JSON type and size. Fields nobody reads are ignored: VAPI adds fields
and message types freely. A refusal is a `PayloadError` with a machine-readable `code` and a
message naming the field, never its value; the endpoint answers it with 400.

Tool calls are read defensively instead (the schema says `{id, function: {name, arguments:
<string>}}`, the doc examples also send `{id, name, parameters}` and `arguments` as an
object): an item that names no usable id is skipped, never refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from services.channels.vapi.callers import CallRef, call_ref
from services.common.safe_json import UntrustedJsonError, loads_untrusted

MAX_ID = 64
_ID = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_ID - 1}}}$"
ID_PATTERN = re.compile(_ID)
"""VAPI ids are UUIDs (36 characters); ids end up in Redis keys and Kafka message ids."""
_LABEL = r"^[\x20-\x7e]{1,128}$"
_REASON = re.compile(r"[a-z0-9][a-z0-9._:-]{0,127}")
_TIMESTAMP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}")
"""A timestamp sent as a string (an ISO date, say); it ends up in provider message ids."""
MAX_TOOL_CALLS = 32

Id = Annotated[str, StringConstraints(pattern=_ID)]
Label = Annotated[str, StringConstraints(pattern=_LABEL)]
"""Printable ASCII, 1-128 characters: message types, statuses, roles."""
Text = Annotated[str, StringConstraints(max_length=4096)]


class PayloadError(ValueError):
    """A body or field refused; `code` is machine-readable, `field` names it (if one)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def detail(self) -> dict[str, str]:
        """The `detail` of the 400 answer."""
        extra = {"field": self.field} if self.field else {}
        return {"error": self.code, "message": self.message, **extra}


class _Payload(BaseModel):
    # Field names are VAPI's (camelCase).
    # strict: a number is not an id; hide_input_in_errors: no caller data in an error.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, hide_input_in_errors=True)


class _Call(_Payload):
    id: Id | None = None


class _Server(_Payload):
    credentialId: Text | None = None


class _PhoneNumber(_Payload):
    server: _Server | None = None


class _FunctionCall(_Payload):
    name: Text | None = None


class _Message(_Payload):
    type: Label
    timestamp: Any = None
    """Checked in `_timestamp`: a number (milliseconds) or a short string."""
    call: _Call | None = None
    status: Label | None = None
    role: Label | None = None
    endedReason: Text | None = None
    phoneNumber: _PhoneNumber | None = None
    toolCallList: list[Any] | None = None
    toolWithToolCallList: list[Any] | None = None
    functionCall: _FunctionCall | None = None


@dataclass(frozen=True)
class ToolCall:
    """One tool call VAPI asks us to run: its id, the function's name and its arguments."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VapiMessage:
    """One server-URL message, with the fields the endpoint reads checked."""

    type: str
    timestamp: str
    """As sent (milliseconds, usually); empty when absent."""
    call: CallRef | None
    """None for messages about no call (VAPI Chat events)."""
    status: str = ""
    role: str = ""
    ended_reason: str = ""
    credential_id: str = ""
    """`phoneNumber.server.credentialId`: the credential the phone number's server uses."""
    function_name: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def dedupe_key(self) -> str | None:
        """Call id, type and timestamp (VAPI sends no delivery id); None when a part is
        missing, and then only the provider message ids dedupe (in the brain)."""
        if self.call is None or not self.timestamp:
            return None
        return f"{self.call.call_id}:{self.type}:{self.timestamp}"


_PHRASES = {
    "missing": "is required",
    "string_type": "must be a string",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be an array",
    "string_too_long": "is too long",
    "string_pattern_mismatch": "has a length or characters that are not allowed",
}


def parse_message(body: bytes) -> VapiMessage:
    """The `message` of a server-URL body, or `PayloadError`."""
    try:
        payload = loads_untrusted(body)
    except UntrustedJsonError as error:
        raise PayloadError(error.code, error.message) from None
    if not isinstance(payload, dict):
        raise PayloadError("not_an_object", "the body must be a JSON object")
    raw = payload.get("message")
    if not isinstance(raw, dict):
        raise PayloadError("invalid_field", "message must be an object", "message")
    try:
        message = _Message.model_validate(raw)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False, include_context=False)[0]
        where = ".".join(["message", *(str(part) for part in first["loc"])])
        phrase = _PHRASES.get(first["type"], "is not valid")
        code = "missing_field" if first["type"] == "missing" else "invalid_field"
        raise PayloadError(code, f"{where} {phrase}", where) from None
    ref = call_ref(raw.get("call")) if message.call and message.call.id else None
    server = message.phoneNumber.server if message.phoneNumber else None
    credential = server.credentialId if server and server.credentialId else ""
    return VapiMessage(
        type=message.type,
        timestamp=_timestamp(message.timestamp),
        call=ref,
        status=message.status or "",
        role=message.role or "",
        ended_reason=reason_label(message.endedReason),
        credential_id=credential if ID_PATTERN.fullmatch(credential) else "",
        function_name=(message.functionCall.name or "") if message.functionCall else "",
        tool_calls=_tool_calls(message.toolCallList, message.toolWithToolCallList),
    )


def reason_label(value: str | None) -> str:
    """An `endedReason` fit for Redis, ops events and logs: VAPI's own values are lowercase
    words joined by `-`, `.` or `:`; anything else is `unrecognized` (never quoted)."""
    if not value:
        return ""
    return value if _REASON.fullmatch(value) else "unrecognized"


def _timestamp(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        return value
    raise PayloadError(
        "invalid_field", "message.timestamp must be a number or a short string", "message.timestamp"
    )


def _tool_calls(listed: list[Any] | None, wrapped: list[Any] | None) -> tuple[ToolCall, ...]:
    items = (
        listed
        if listed is not None
        else [entry.get("toolCall") for entry in wrapped or [] if isinstance(entry, Mapping)]
    )
    calls = []
    for item in items[:MAX_TOOL_CALLS]:
        call = tool_call(item)
        if call is not None:
            calls.append(call)
    return tuple(calls)


def tool_call(item: Any) -> ToolCall | None:
    """One tool call, read defensively: `function.name` or `name`; `function.arguments` as
    a JSON string or an object, or `parameters`. None when it names no usable id."""
    if not isinstance(item, Mapping):
        return None
    call_id = item.get("id")
    if not isinstance(call_id, str) or not ID_PATTERN.fullmatch(call_id):
        return None
    function = item.get("function")
    function = function if isinstance(function, Mapping) else {}
    name = function.get("name", item.get("name"))
    arguments: Any = function.get("arguments", item.get("parameters"))
    if isinstance(arguments, str):
        try:
            arguments = loads_untrusted(arguments)
        except UntrustedJsonError:
            arguments = None
    return ToolCall(
        id=call_id,
        name=name if isinstance(name, str) and len(name) <= 128 else "",
        arguments=dict(arguments) if isinstance(arguments, Mapping) else {},
    )
