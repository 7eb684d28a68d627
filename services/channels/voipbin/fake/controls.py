"""The ``/_fake`` control endpoints for tests (no auth): records, config, calls, emit, fetch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from services.channels.voipbin.fake.config import SIP_DOMAIN
from services.channels.voipbin.fake.errors import ApiError, error_response
from services.channels.voipbin.fake.events import deliver_event
from services.channels.voipbin.fake.fetch import fetch_actions
from services.channels.voipbin.fake.rest.fields import optional_uuid
from services.channels.voipbin.fake.state import FakeVoipbinState
from services.channels.voipbin.fake.wire import address_of


def _fake_error(status: int, message: str) -> JSONResponse:
    return error_response(ApiError(status, "INVALID_ARGUMENT", message))


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.json()
    if not isinstance(body, dict):
        raise TypeError("expected a JSON object")
    return body


def _control_call(fake: FakeVoipbinState, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /_fake/calls``: dial a Direct Hash (``sip_uri``/``direct_hash``) or add a call."""
    status = str(body.get("status", "progressing"))
    target = body.get("sip_uri") or body.get("direct_hash")
    source = address_of(str(body.get("source", "+15551234567")))
    if target:
        return dial_direct_hash(fake, str(target), source, status)
    destination = address_of(str(body.get("destination", "+15550000000")))
    direction: Literal["incoming", "outgoing"] = (
        "outgoing" if body.get("direction") == "outgoing" else "incoming"
    )
    flow_id = optional_uuid(body.get("flow_id"), "flow_id")
    return fake.add_call(
        source=source, destination=destination, flow_id=flow_id, direction=direction, status=status
    )


def dial_direct_hash(
    fake: FakeVoipbinState, target: str, source: dict[str, str], status: str
) -> dict[str, Any]:
    direct_hash = target.removeprefix("sip:").split("@")[0]
    flow = fake.flow_for_hash(direct_hash)
    destination = address_of(f"{direct_hash}@{SIP_DOMAIN}")
    return fake.add_call(source=source, destination=destination, flow_id=flow["id"], status=status)


def add_record_controls(app: FastAPI, fake: FakeVoipbinState) -> None:
    @app.get("/_fake/requests")
    async def recorded_requests() -> list[dict[str, Any]]:
        return fake.requests()

    @app.get("/_fake/deliveries")
    async def recorded_deliveries() -> list[dict[str, Any]]:
        return fake.deliveries()

    @app.get("/_fake/speech")
    async def recorded_speech(call_id: str | None = None) -> list[dict[str, Any]]:
        return fake.speech_log(call_id)

    @app.get("/_fake/fetches")
    async def recorded_fetches() -> list[dict[str, Any]]:
        return fake.fetches()

    @app.get("/_fake/resources")
    async def resources() -> dict[str, Any]:
        return {
            "customer": fake.customer(),
            "flows": fake.flows(),
            "calls": fake.calls(),
            "speakings": fake.speakings(),
            "transcribes": fake.transcribes(),
        }

    @app.get("/_fake/config")
    async def current_config() -> dict[str, Any]:
        return fake.config.public()

    @app.post("/_fake/reset")
    async def reset() -> dict[str, Any]:
        fake.reset()
        return fake.config.public()

    @app.post("/_fake/config")
    async def configure(request: Request) -> Response:
        try:
            return JSONResponse(fake.configure(**await _json_object(request)).public())
        except (ValueError, TypeError) as exc:  # bad JSON, non-object, or validation error
            return _fake_error(422, str(exc))


def add_action_controls(app: FastAPI, fake: FakeVoipbinState) -> None:
    async def run(request: Request, action: Callable[[dict[str, Any]], Any]) -> Response:
        try:
            body = await _json_object(request)
            return JSONResponse(await asyncio.to_thread(action, body))
        except ApiError as error:
            return error_response(error)
        except (ValueError, TypeError, KeyError, RuntimeError, ValidationError) as exc:
            return _fake_error(422, f"{type(exc).__name__}: {exc}")

    @app.post("/_fake/calls")
    async def add_call(request: Request) -> Response:
        return await run(request, lambda body: _control_call(fake, body))

    @app.post("/_fake/calls/{call_id}/status")
    async def call_status(call_id: str, request: Request) -> Response:
        def move(body: dict[str, Any]) -> dict[str, Any]:
            call = fake.set_call_status(call_id, str(body["status"]))
            if body.get("emit"):
                deliver_event(fake, f"call_{call['status']}", call)
            return call

        return await run(request, move)

    @app.post("/_fake/flows/{flow_id}/clear-direct-hash")
    async def clear_hash(flow_id: str) -> Response:
        try:
            return JSONResponse(fake.clear_direct_hash(flow_id))
        except ApiError as error:
            return error_response(error)

    @app.post("/_fake/emit")
    async def emit(request: Request) -> Response:
        def send(body: dict[str, Any]) -> dict[str, Any]:
            options = {k: body[k] for k in ("uri", "method", "sign", "signature") if k in body}
            return deliver_event(fake, str(body["type"]), body.get("data", {}), **options)

        return await run(request, send)

    @app.post("/_fake/fetch")
    async def fetch(request: Request) -> Response:
        def drive(body: dict[str, Any]) -> dict[str, Any]:
            options = {
                k: body[k]
                for k in ("method", "activeflow_id", "reference_id", "timeout")
                if k in body
            }
            result = fetch_actions(str(body["url"]), **options).to_dict()
            fake.record_fetch(result)
            return result

        return await run(request, drive)
