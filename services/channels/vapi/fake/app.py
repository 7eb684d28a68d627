"""The fake VAPI ASGI app: the REST API at the root (as on api.vapi.ai), control URLs, and the
``/_fake`` controls."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.channels.vapi.fake.controls import add_controls
from services.channels.vapi.fake.errors import ApiError, error_response
from services.channels.vapi.fake.live_control import add_live_control
from services.channels.vapi.fake.resources import ROUTES
from services.channels.vapi.fake.rest import ApiCall, api_endpoint, credential_kind
from services.channels.vapi.fake.state import FakeVapiState


def create_app(state: FakeVapiState | None = None) -> FastAPI:
    """Build the fake VAPI app around ``state`` (a fresh default state if None)."""
    fake = state or FakeVapiState()
    app = FastAPI(title="Fake VAPI", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake

    @app.exception_handler(StarletteHTTPException)
    async def unknown_route(request: Request, exc: StarletteHTTPException) -> Response:
        # NestJS answers an unknown route (or method) with 404 "Cannot <METHOD> <path>"; it
        # is recorded like the rest, so a test sees a client calling a path VAPI lacks.
        status = 404 if exc.status_code in (404, 405) else exc.status_code
        path = request.url.path
        response = error_response(ApiError(status, f"Cannot {request.method} {path}"))
        if not path.startswith(("/_fake", "/control")):
            call = await ApiCall.read(request)
            call.auth = credential_kind(request, fake)
            fake.record_request(call.record(status))
        return response

    for method, path, handler in ROUTES:
        app.add_api_route(path, api_endpoint(fake, handler), methods=[method])
    add_live_control(app, fake)
    add_controls(app, fake)
    return app
