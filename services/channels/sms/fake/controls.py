"""The ``/_fake`` controls for tests (not Twilio API, no auth): records, reset, config."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.channels.sms.fake.errors import twilio_error
from services.channels.sms.fake.state import FakeTwilioState


def add_controls(app: FastAPI, fake: FakeTwilioState) -> None:
    """Mount the ``/_fake`` endpoints of ``fake`` on ``app``."""

    @app.get("/_fake/messages")
    async def recorded_messages() -> list[dict[str, Any]]:
        return fake.messages()

    @app.get("/_fake/attempts")
    async def recorded_attempts() -> list[dict[str, Any]]:
        return fake.attempts()

    @app.get("/_fake/callbacks")
    async def recorded_callbacks() -> list[dict[str, Any]]:
        return fake.callbacks()

    @app.post("/_fake/reset")
    async def reset() -> dict[str, Any]:
        fake.reset()
        return fake.config.public()

    @app.post("/_fake/config")
    async def configure(request: Request) -> Response:
        try:
            fields = await request.json()
            if not isinstance(fields, dict):
                raise TypeError("expected a JSON object of config fields")
            return JSONResponse(fake.configure(**fields).public())
        except (ValueError, TypeError) as exc:  # bad JSON, non-object, or validation error
            return twilio_error(422, 20001, str(exc))
