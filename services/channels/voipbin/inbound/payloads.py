"""What voice ingress accepts from VoIPBin: event envelopes, event `data`, fetch requests.

A valid signature (or fetch token) proves who sent a body, not that it is sane: a bug or a
leaked secret can still send a `source` that is a string, an id of 100 KB, a lone UTF-16
surrogate or JSON nested thousands of levels deep. So every body is parsed with
`loads_untrusted` (depth, number and surrogate limits) and every field a handler reads is
checked here, once, for its JSON type, length and characters. Fields nobody reads are
ignored: VoIPBin adds fields and omits empty ones (providers.md §1.5). Anything refused is a
`PayloadError` with a machine-readable `code` and a message that names the field, never its
value; the endpoints answer it with 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError

from services.common.safe_json import UntrustedJsonError, is_well_formed_text, loads_untrusted

MAX_ID = 64
"""VoIPBin ids are UUIDs (36 characters); ids end up in Redis keys and Kafka message ids."""
MAX_LABEL = 64
MAX_TARGET = 256
_ID = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_ID - 1}}}$"
_PRINTABLE_ASCII = r"^[\x20-\x7e]*$"


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


def _well_formed(value: str) -> str:
    # `loads_untrusted` refuses surrogates already; this keeps the models safe on their own
    # (query strings, tests, a future caller that parses differently).
    if not is_well_formed_text(value):
        raise ValueError("lone surrogate")
    return value


# ASCII only, by pattern: a lone surrogate or any other non-ASCII character cannot match.
VoipbinId = Annotated[str, StringConstraints(pattern=_ID)]
OptionalId = Annotated[str, StringConstraints(pattern=rf"^$|{_ID}")]
Label = Annotated[str, StringConstraints(max_length=MAX_LABEL, pattern=_PRINTABLE_ASCII)]
Target = Annotated[str, StringConstraints(max_length=MAX_TARGET), AfterValidator(_well_formed)]
Text = Annotated[str, AfterValidator(_well_formed)]
"""Caller speech: any length (the handler truncates), any script, but well-formed."""


class _Payload(BaseModel):
    # strict: a number is not an id and a string is not an object; hide_input_in_errors: a
    # ValidationError that escaped anyway would not carry the caller's words into a log.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, hide_input_in_errors=True)


class Address(_Payload):
    """A VoIPBin Address; only `target` (number, SIP user@host...) is read."""

    target: Target | None = None


class EventData(_Payload):
    """What every handled event's `data` has: its resource id and what versions it."""

    id: VoipbinId
    status: Label | None = None
    tm_update: Label | None = None

    def dedupe_key(self, event_type: str) -> str:
        """What makes two deliveries the same event: type, resource id, and its state."""
        return f"{event_type}:{self.id}:{self.status or self.tm_update or ''}"


class CallData(EventData):
    """`call_*` events."""

    direction: Label | None = None
    source: Address | None = None
    destination: Address | None = None

    @property
    def customer(self) -> str:
        """The customer's side: the source of an incoming call, the destination of one we
        placed (`switchboard voipbin call`)."""
        side = self.destination if self.direction == "outgoing" else self.source
        return (side.target or "") if side else ""


class SpeechData(EventData):
    """`transcript_created` and `transcribe_speech_*`: caller speech of a transcribe session."""

    transcribe_id: VoipbinId
    direction: Label | None = None
    message: Text | None = None


class SessionData(EventData):
    """`transcribe_*` and `speaking_*`: a session on some resource."""

    reference_type: Label | None = None
    reference_id: OptionalId | None = None


class FetchRequest(_Payload):
    """A `fetch` action's request: `{"activeflow_id", "reference_id"}` (the call id)."""

    reference_id: OptionalId | None = None


Model = TypeVar("Model", bound=_Payload)

_PHRASES = {
    "missing": "is required",
    "string_type": "must be a string",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "string_too_long": "is too long",
    "string_pattern_mismatch": "has a length or characters that are not allowed",
    "value_error": "must be well-formed text",
}


def validated(model: type[Model], data: Any, where: str) -> Model:
    """`data` as `model`, or `PayloadError` naming the first bad field (never its value)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False, include_context=False)[0]
        field = ".".join([where, *(str(part) for part in first["loc"])])
        phrase = _PHRASES.get(first["type"], "is not valid")
        code = "missing_field" if first["type"] == "missing" else "invalid_field"
        raise PayloadError(code, f"{field} {phrase}", field) from None


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, within `loads_untrusted`'s limits."""
    try:
        payload = loads_untrusted(body)
    except UntrustedJsonError as error:
        raise PayloadError(error.code, error.message) from None
    if not isinstance(payload, dict):
        raise PayloadError("not_an_object", "the body must be a JSON object")
    return payload


def parse_fetch(body: bytes, query: Mapping[str, str]) -> FetchRequest:
    """A fetch request from its JSON body (VoIPBin sends one with GET too), or from the query
    string when a GET came without one."""
    data: Mapping[str, Any] = parse_json_object(body) if body.strip() else query
    return validated(FetchRequest, dict(data), "body" if body.strip() else "query")


def parse_envelope(body: bytes) -> tuple[str, dict[str, Any]]:
    """`(type, data)` of an event body; `data` still to be validated for its type."""
    payload = parse_json_object(body)
    event_type, data = payload.get("type"), payload.get("data")
    if not isinstance(event_type, str) or not event_type:
        raise PayloadError("invalid_field", "type must be a non-empty string", "type")
    if not isinstance(data, dict):
        raise PayloadError("invalid_field", "data must be an object", "data")
    return event_type, data
