"""The fake VoIPBin ASGI app: the REST API, the ``/_fake`` controls, VoIPBin-style 404s."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.channels.voipbin.fake.config import API_PREFIX
from services.channels.voipbin.fake.controls import add_action_controls, add_record_controls
from services.channels.voipbin.fake.errors import ApiError, error_response
from services.channels.voipbin.fake.rest import API_ROUTES
from services.channels.voipbin.fake.rest.request import ApiCall, api_endpoint, find_credential
from services.channels.voipbin.fake.state import FakeVoipbinState


def create_app(state: FakeVoipbinState | None = None) -> FastAPI:
    """Build the fake VoIPBin app around ``state`` (a fresh default state if None)."""
    fake = state or FakeVoipbinState()
    app = FastAPI(title="Fake VoIPBin", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake

    @app.exception_handler(StarletteHTTPException)
    async def unknown_route(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown API paths answer in VoIPBin's envelope and are recorded like the rest, so a
        # test sees egress calling a path VoIPBin does not have.
        # gin answers an unknown method on a known path with 404 too.
        status = 404 if exc.status_code in (404, 405) else exc.status_code
        response = error_response(ApiError(status, "RESOURCE_NOT_FOUND", str(exc.detail)))
        if request.url.path.startswith(API_PREFIX):
            call = await ApiCall.read(request)
            call.auth = find_credential(request)[0]
            fake.record_request(call.record(status))
        return response

    for method, path, handler in API_ROUTES:
        app.add_api_route(API_PREFIX + path, api_endpoint(fake, handler), methods=[method])
    add_record_controls(app, fake)
    add_action_controls(app, fake)
    return app
