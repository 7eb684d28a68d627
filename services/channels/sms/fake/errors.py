"""Twilio's REST error envelope, its messages, and how an injected failure answers."""

from __future__ import annotations

from typing import Literal, NamedTuple

from fastapi.responses import JSONResponse

# Messages Twilio gives for the codes tests are likely to inject via error_for_numbers.
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone "
    "number for this destination/account.",
    21608: "The number is unverified. Trial accounts may only send messages to verified numbers.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21635: "The 'To' number cannot receive messages: it is a landline.",
}


class Failure(NamedTuple):
    """How a send fails: attempt outcome, HTTP status, Twilio code, extra headers."""

    outcome: Literal["rate_limited", "injected_failure", "number_error"]
    status: int
    code: int
    headers: dict[str, str] | None = None


def default_code(status: int) -> int:
    """Twilio's code for an injected HTTP failure without an explicit ``fail_code``."""
    if status == 429:
        return 20429
    if status >= 500:
        return 20500
    return 20000 + status


def twilio_error(
    status: int, code: int, message: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A response in Twilio's REST error envelope."""
    body = {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, f"Error {code} (fake Twilio)."),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers)
