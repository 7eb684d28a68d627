"""How a REST request is served: read once, authenticated, admitted, handled, recorded.

Order of checks: route (unknown paths get VAPI's 404 body), the Bearer private key (401),
rate limit and ``fail_next`` (429/5xx, a 429 with ``Retry-After``), latency, then the
endpoint. Every request is recorded with its body masked, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from services.channels.vapi.fake.errors import INVALID_KEY, ApiError, error_response
from services.channels.vapi.fake.state import FakeVapiState
from services.fakes.api_call import ApiCall as BaseApiCall


class ApiCall(BaseApiCall):
    """One request to the API, read once and handed to the endpoint and the recorder."""

    malformed_chars = 200

    def body(self) -> dict[str, Any]:
        """The JSON object body, or 400."""
        if self.malformed:
            raise ApiError(400, "Unexpected token in JSON")
        if not isinstance(self.payload, dict):
            raise ApiError(400, ["body must be a JSON object"])
        return self.payload

    @property
    def id(self) -> str:
        return self.path_params.get("id", "")


def credential_kind(request: Request, state: FakeVapiState) -> str:
    """``private``, ``public`` (the wrong key for REST), ``invalid`` or ``none``."""
    header = request.headers.get("authorization")
    if header is None:
        return "none"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return "invalid"
    for kind, key in (("private", state.config.private_key), ("public", state.config.public_key)):
        if hmac.compare_digest(token.strip().encode(), key.get_secret_value().encode()):
            return kind
    return "invalid"


Handler = Callable[[FakeVapiState, ApiCall], tuple[int, Any]]


async def _serve(
    state: FakeVapiState, handler: Handler, call: ApiCall, request: Request
) -> Response:
    call.auth = credential_kind(request, state)
    if call.auth == "none":
        return error_response(ApiError(401, "Missing Authorization Header"))
    if call.auth != "private":
        return error_response(ApiError(401, INVALID_KEY))
    refusal = state.admit()
    if refusal is not None:
        return error_response(refusal.error, refusal.headers)
    if latency := state.config.latency_ms:
        await asyncio.sleep(latency / 1000)
    try:
        status, body = handler(state, call)
    except ApiError as error:
        return error_response(error)
    return JSONResponse(body, status_code=status)


def api_endpoint(state: FakeVapiState, handler: Handler) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        call = await ApiCall.read(request)
        response = await _serve(state, handler, call, request)
        state.record_request(call.record(response.status_code))
        return response

    return endpoint
