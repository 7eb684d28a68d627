"""Live Call Control (providers.md 3.6): ``POST <call.monitor.controlUrl>`` with a bare object.

``{"type": "say", "content", "endCallAfterSpoken"?}`` is heard by the caller and joins the
conversation; ``{"type": "add-message", "message": {role, content}}`` joins it;
``{"type": "end-call"}`` ends the call (``assistant-ended-call``), ``transfer`` too
(``assistant-forwarded-call``); ``control`` and ``handoff`` are recorded only. The spec's
``{"message": {...}}`` wrapper has no top-level ``type`` and is refused with 400.

When the call's assistant has ``monitorPlan.controlAuthenticationEnabled`` (or the fake's
``control_auth_required`` is on) the request needs ``Authorization: Bearer <public key>``.
Every request is recorded with ``during_stream``: whether a custom-LLM stream of the call was
open (VAPI is reported to break the stream when one arrives then).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.channels.vapi.fake.config import CONTROL_TYPES
from services.channels.vapi.fake.errors import ApiError, error_response
from services.channels.vapi.fake.live import LiveCall
from services.channels.vapi.fake.state import FakeVapiState

_ENDS = {
    "end-call": "assistant-ended-call",
    "transfer": "assistant-forwarded-call",
}


def _authorized(request: Request, state: FakeVapiState) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    key = state.config.public_key.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key)


def _checked(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("type") not in CONTROL_TYPES:
        raise ApiError(400, [f"type must be one of: {', '.join(sorted(CONTROL_TYPES))}"])
    if body["type"] == "say" and (not isinstance(body.get("content"), str) or not body["content"]):
        raise ApiError(400, ["content must be a string"])
    if body["type"] == "add-message" and not isinstance(body.get("message"), dict):
        raise ApiError(400, ["message must be an object"])
    return body


def _carry_out(live: LiveCall, body: dict[str, Any]) -> None:
    kind = body["type"]
    if kind in ("say", "add-message"):
        live.queue(body)
        if kind == "say" and body.get("endCallAfterSpoken") is True:
            live.end("assistant-ended-call-after-message-spoken")
    elif kind in _ENDS:
        live.end(_ENDS[kind])


async def _control(state: FakeVapiState, call_id: str, request: Request) -> Response:
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw.strip() else None
    except ValueError:
        body = None
    live = state.live(call_id)
    record = {
        "call_id": call_id,
        "type": body.get("type") if isinstance(body, dict) else None,
        "body": body,
        "authorized": _authorized(request, state),
        "during_stream": bool(live and live.streaming),
        "at": time.monotonic(),
        "time": time.time(),
    }
    try:
        if live is None:
            raise ApiError(404, "Call not found")
        if live.control_auth and not record["authorized"]:
            raise ApiError(401, "Unauthorized")
        if live.ended_reason is not None:
            raise ApiError(400, "Call has ended")
        _carry_out(live, _checked(body))
        response: Response = JSONResponse({}, status_code=200)
    except ApiError as error:
        response = error_response(error)
    state.record_control(record | {"status": response.status_code})
    return response


def add_live_control(app: FastAPI, state: FakeVapiState) -> None:
    """Mount ``POST /control/{call_id}`` (the URL every call advertises)."""

    @app.post("/control/{call_id}")
    async def control(call_id: str, request: Request) -> Response:
        return await _control(state, call_id, request)
