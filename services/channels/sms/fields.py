"""The fields of Twilio's webhooks that SMS ingress reads, checked before anything uses them.

A valid `X-Twilio-Signature` proves who posted a form, not that its fields are sane, and a
check that looks right can still crash: `"²".isdigit()` is true and `int("²")` raises, and
`int()` of a 5,000-digit string exceeds CPython's limit. So each field is checked for what it
is, with ASCII-only rules and a length cap:

- sids (`MessageSid`...) are 1-64 ASCII letters and digits (Twilio's are 34: `SM` + 32 hex);
- counts and codes (`NumMedia`, `ErrorCode`) are a few ASCII digits;
- a customer address is a phone number, never an address of another channel
  (`whatsapp:+1...`): this channel answers by SMS, and a customer is only ever answered on
  the channel they used;
- a field the code reads may appear once (which of two `From`s would count?).

Fields nobody reads are not checked: Twilio adds fields over time. Anything refused is a
`FormError` with a machine-readable code and a message naming the field, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import ImmutableMultiDict

from services.channels.sms.twilio import UNSUBSCRIBED
from services.common.safe_json import is_well_formed_text
from services.ingress.identity import InvalidPhoneNumber, is_other_channel_address

_SID = re.compile(r"[A-Za-z0-9]{1,64}")
MAX_MEDIA_DIGITS = 2
"""Twilio attaches at most 10 media to a message."""
MAX_ERROR_CODE_DIGITS = 6
"""Twilio error codes have five digits."""

Form = ImmutableMultiDict[str, str]
Canonical = Callable[[str], str]
"""Turns a phone number into E.164 or raises `InvalidPhoneNumber` (the identity resolver)."""


class FormError(ValueError):
    """A field refused; `code` is machine-readable, `field` names it."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def detail(self) -> dict[str, str]:
        """The `detail` of the 400 answer."""
        return {"error": self.code, "message": self.message, "field": self.field}


def single(form: Form, name: str, *, required: bool = False) -> str | None:
    """The one value of `name`; None when absent or empty (unless `required`)."""
    values = form.getlist(name)
    if len(values) > 1:
        raise FormError("repeated_field", f"{name} must appear once", name)
    value = values[0] if values else ""
    # The form decoder replaces undecodable bytes, so this holds today; it is cheap to keep.
    if not is_well_formed_text(value):
        raise FormError("invalid_field", f"{name} must be well-formed text", name)
    if not value:
        if required:
            raise FormError("missing_field", f"{name} is required", name)
        return None
    return value


def sid(form: Form, name: str) -> str | None:
    """A Twilio sid field, if present."""
    value = single(form, name)
    if value is not None and not _SID.fullmatch(value):
        raise FormError("invalid_field", f"{name} must be 1-64 ASCII letters and digits", name)
    return value


def ascii_number(form: Form, name: str, max_digits: int) -> str | None:
    """A field of at most `max_digits` ASCII digits, if present (kept as written)."""
    value = single(form, name)
    if value is not None and not (len(value) <= max_digits and value.isascii() and value.isdigit()):
        raise FormError("invalid_field", f"{name} must be at most {max_digits} ASCII digits", name)
    return value


def sms_address(form: Form, name: str, canonical: Canonical) -> str:
    """A required customer address, as E.164."""
    value = single(form, name, required=True) or ""
    if is_other_channel_address(value):
        raise FormError(
            "unsupported_address",
            f"{name} is an address of another channel; this endpoint takes SMS only",
            name,
        )
    if not value.isascii():
        raise FormError("invalid_address", f"{name} must be a phone number in ASCII", name)
    try:
        return canonical(value)
    except InvalidPhoneNumber as error:
        raise FormError("invalid_address", f"{name}: {error}", name) from None


def _first_sid(form: Form, *names: str) -> str:
    # Every spelling present is checked, not only the one used: a hostile duplicate under
    # Twilio's older name is refused like any other bad field.
    found = [value for value in (sid(form, name) for name in names) if value]
    if not found:
        raise FormError("missing_field", f"{names[0]} is required", names[0])
    return found[0]


@dataclass(frozen=True)
class InboundSms:
    """The fields of an inbound message that ingress uses."""

    message_sid: str
    number: str
    """The sender, E.164."""
    body: str
    num_media: int


def inbound_sms(form: Form, canonical: Canonical) -> InboundSms:
    """The inbound message webhook's fields, checked (or `FormError`)."""
    message_sid = _first_sid(form, "MessageSid", "SmsMessageSid")
    number = sms_address(form, "From", canonical)
    num_media = ascii_number(form, "NumMedia", MAX_MEDIA_DIGITS)
    return InboundSms(
        message_sid=message_sid,
        number=number,
        body=single(form, "Body") or "",
        num_media=int(num_media or 0),
    )


@dataclass(frozen=True)
class StatusCallback:
    """The fields of a message status callback that ingress uses."""

    message_sid: str
    status: str
    error_code: str | None
    opted_out: str | None
    """The recipient (E.164) when Twilio says they unsubscribed (error 21610)."""


def status_callback(form: Form, canonical: Canonical) -> StatusCallback:
    """The status callback's fields, checked (or `FormError`)."""
    message_sid = _first_sid(form, "MessageSid", "SmsSid")
    raw_status = single(form, "MessageStatus") or single(form, "SmsStatus")
    if raw_status is None:
        raise FormError("missing_field", "MessageStatus is required", "MessageStatus")
    error_code = ascii_number(form, "ErrorCode", MAX_ERROR_CODE_DIGITS)
    # `To` is only read to record an opt-out; then it must be the number we texted.
    opted_out = sms_address(form, "To", canonical) if error_code == str(UNSUBSCRIBED) else None
    return StatusCallback(message_sid, raw_status, error_code, opted_out)
