"""VoIPBin's error envelope, and the ApiError that endpoints and state operations raise."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.responses import JSONResponse

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "NOT_FOUND",
    409: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}


class ApiError(Exception):
    """A VoIPBin API error: the HTTP status plus the envelope's ``reason`` and ``message``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def error_envelope(status: int, reason: str, message: str, request_id: str = "") -> dict[str, Any]:
    """VoIPBin's error body: ``{"error": {"status", "reason", "message", "request_id"}}``."""
    return {
        "error": {
            "status": _STATUS_NAMES.get(
                status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"
            ),
            "reason": reason,
            "message": message,
            "request_id": request_id or str(uuid.uuid4()),
        }
    }


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    body = error_envelope(error.status, error.reason, error.message)
    return JSONResponse(body, status_code=error.status, headers=headers)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "RESOURCE_NOT_FOUND", f"The {what} {ident} was not found.")


def bad_request(message: str, reason: str = "INVALID_ARGUMENT") -> ApiError:
    return ApiError(400, reason, message)
