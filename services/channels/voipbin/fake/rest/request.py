"""How an API request is served: read once, authenticated, admitted, handled, recorded."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from services.channels.voipbin.fake.config import FakeVoipbinConfig
from services.channels.voipbin.fake.errors import ApiError, bad_request, error_response
from services.channels.voipbin.fake.rest.fields import checked_uuid
from services.channels.voipbin.fake.state import FakeVoipbinState
from services.fakes.api_call import ApiCall as BaseApiCall

_SECRET_PARAMS = frozenset({"accesskey", "token"})


class ApiCall(BaseApiCall):
    """One request to the API, read once and handed to the endpoint and the recorder."""

    hidden_query = _SECRET_PARAMS

    def body(self) -> dict[str, Any]:
        """The JSON object body, or 400 ``INVALID_JSON_BODY`` as VoIPBin's ``BindJSON``."""
        if self.malformed or not isinstance(self.payload, dict):
            raise bad_request("The request body is not valid JSON.", "INVALID_JSON_BODY")
        return self.payload

    def id(self) -> str:
        """The ``{id}`` path parameter, checked to be a UUID."""
        return checked_uuid(self.path_params.get("id"))


def find_credential(request: Request) -> tuple[str, str]:
    """(kind, value) as VoIPBin's middleware finds it: a token first, then an accesskey."""
    authorization = request.headers.get("authorization", "")
    # Go splits on "Bearer " and takes the part after it; anything else is no token.
    bearer = authorization.split("Bearer ")[1] if "Bearer " in authorization else ""
    token = request.cookies.get("token") or request.query_params.get("token") or bearer
    if token:
        return "token", token
    key = request.cookies.get("accesskey") or request.query_params.get("accesskey") or ""
    return ("accesskey", key) if key else ("none", "")


def _auth_error(kind: str, value: str, config: FakeVoipbinConfig) -> ApiError | None:
    if kind == "none":
        return ApiError(401, "AUTHENTICATION_REQUIRED", "Authentication is required.")
    expected = config.access_key.get_secret_value().encode()
    # The fake issues no JWTs, so every token fails, as a Bearer accesskey does in VoIPBin.
    if kind == "token" or not hmac.compare_digest(value.encode(), expected):
        return ApiError(401, "INVALID_CREDENTIALS", "The provided credentials are invalid.")
    return None


Handler = Callable[[FakeVoipbinState, ApiCall], tuple[int, Any]]


def _json_answer(status: int, body: Any) -> Response:
    return Response(status_code=status) if body is None else JSONResponse(body, status_code=status)


async def _serve(
    fake: FakeVoipbinState, handler: Handler, call: ApiCall, request: Request
) -> Response:
    """Auth, rate limit, ``fail_next``, latency, then the endpoint."""
    kind, value = find_credential(request)
    call.auth = kind
    denied = _auth_error(kind, value, fake.config)
    if denied is not None:
        return error_response(denied)
    refusal = fake.admit()
    if refusal is not None:
        return error_response(refusal.error, refusal.headers)
    if latency := fake.config.latency_ms:
        await asyncio.sleep(latency / 1000)
    try:
        status, body = handler(fake, call)
    except ApiError as error:
        return error_response(error)
    return _json_answer(status, body)


def api_endpoint(fake: FakeVoipbinState, handler: Handler) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        call = await ApiCall.read(request)
        response = await _serve(fake, handler, call, request)
        fake.record_request(call.record(response.status_code))
        return response

    return endpoint
