"""The ``/_fake`` control endpoints for tests and tools (no auth): records, config, calls."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from services.channels.vapi.fake.calling import call_options, drive_call
from services.channels.vapi.fake.errors import ApiError, error_response
from services.channels.vapi.fake.state import FakeVapiState


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.json()
    if not isinstance(body, dict):
        raise TypeError("expected a JSON object")
    return body


def _fake_error(status: int, message: str) -> JSONResponse:
    return error_response(ApiError(status, message))


def add_controls(app: FastAPI, state: FakeVapiState) -> None:
    @app.get("/_fake/requests")
    async def recorded_requests() -> list[dict[str, Any]]:
        return state.requests()

    @app.get("/_fake/control")
    async def recorded_control(call_id: str | None = None) -> list[dict[str, Any]]:
        return state.control_log(call_id)

    @app.get("/_fake/resources")
    async def resources() -> dict[str, Any]:
        return {
            kind: state.items(kind) for kind in ("assistant", "credential", "phone-number", "call")
        }

    @app.get("/_fake/calls/{call_id}")
    async def call_result(call_id: str) -> Response:
        found = state.result(call_id)
        if found is None:
            return _fake_error(404, "no finished call with this id")
        return JSONResponse(found)

    @app.post("/_fake/calls")
    async def drive(request: Request) -> Response:
        """Play a call (blocks until it is over) and answer its result."""
        try:
            options = call_options(await _json_object(request))
            result = await drive_call(state, **options)
        except ApiError as error:
            return error_response(error)
        except (ValueError, TypeError, KeyError) as exc:
            return _fake_error(422, f"{type(exc).__name__}: {exc}")
        return JSONResponse(result.to_dict())

    @app.get("/_fake/config")
    async def current_config() -> dict[str, Any]:
        return state.config.public()

    @app.post("/_fake/config")
    async def configure(request: Request) -> Response:
        try:
            return JSONResponse(state.configure(**await _json_object(request)).public())
        except (ValueError, TypeError, ValidationError) as exc:
            return _fake_error(422, str(exc))

    @app.post("/_fake/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return state.config.public()
