"""VAPI's error bodies (NestJS style), and the ApiError endpoints and state operations raise."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

_ERROR_NAMES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

INVALID_KEY = (
    "Invalid Key. Hot tip, you may be using the private key instead of the public key,"
    " or vice versa."
)


class ApiError(Exception):
    """A VAPI API error: the HTTP status and the body's ``message`` (a string, or a list of
    validation messages as class-validator writes them)."""

    def __init__(self, status: int, message: str | list[str]) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def error_body(status: int, message: str | list[str]) -> dict[str, Any]:
    """VAPI's error body: ``{"message", "error", "statusCode"}``."""
    name = _ERROR_NAMES.get(status, "Internal Server Error" if status >= 500 else "Bad Request")
    return {"message": message, "error": name, "statusCode": status}


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(error.status, error.message), status_code=error.status, headers=headers
    )


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def bad_request(*messages: str) -> ApiError:
    return ApiError(400, list(messages))
