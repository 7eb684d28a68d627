"""The fake Twilio ASGI app: the Messages API routes, Twilio-style errors, the controls."""

from __future__ import annotations

import asyncio
import copy
import time
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.channels.sms.fake.auth import authorized, unauthorized
from services.channels.sms.fake.callbacks import deliver_callbacks
from services.channels.sms.fake.config import API_VERSION, MAX_PAGE_SIZE
from services.channels.sms.fake.controls import add_controls
from services.channels.sms.fake.errors import twilio_error
from services.channels.sms.fake.state import FakeTwilioState
from services.channels.sms.fake.wire import (
    first_value,
    message_resource,
    page_query,
    parse_day,
    validate_send,
)


def create_app(state: FakeTwilioState | None = None) -> FastAPI:
    """Build the fake Twilio app around ``state`` (a fresh default state if None)."""
    fake = state or FakeTwilioState()
    app = FastAPI(title="Fake Twilio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake
    # Strong references to the callback tasks: the loop only keeps weak ones.
    pending: set[asyncio.Task[None]] = set()
    messages_path = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages"

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown routes and methods answer in Twilio's envelope, as api.twilio.com does.
        code = 20404 if exc.status_code == 404 else 20000 + exc.status_code
        return twilio_error(exc.status_code, code, str(exc.detail))

    @app.post(f"{messages_path}.json")
    async def send_message(account_sid: str, request: Request) -> Response:
        config = fake.config
        if not authorized(request, account_sid, config):
            return unauthorized()
        raw = (await request.body()).decode("utf-8", errors="replace")
        form: dict[str, list[str]] = {}
        for name, value in urllib.parse.parse_qsl(raw, keep_blank_values=True):
            form.setdefault(name, []).append(value)
        invalid = validate_send(form)
        if invalid is not None:
            return twilio_error(400, invalid)

        to = first_value(form, "To") or ""
        from_ = first_value(form, "From")
        service_sid = first_value(form, "MessagingServiceSid")
        body = first_value(form, "Body") or ""
        media_urls = [v for v in form.get("MediaUrl", []) if v != ""]
        status_callback = first_value(form, "StatusCallback")
        attempt: dict[str, Any] = {
            "time": time.time(),
            "to": to,
            "from": from_,
            "messaging_service_sid": service_sid,
            "body": body,
            "media_urls": media_urls,
            "status_callback": status_callback,
        }

        failure = fake.take_failure(to)
        if failure is not None:
            outcome = {"outcome": failure.outcome, "status": failure.status}
            fake.record_attempt(attempt | outcome | {"code": failure.code, "sid": None})
            return twilio_error(failure.status, failure.code, headers=failure.headers)
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)

        created = datetime.now(UTC)
        resource = message_resource(
            config.account_sid, to, from_, service_sid, body, media_urls, created
        )
        generation = fake.generation
        fake.accept(copy.deepcopy(resource), status_callback, created)
        fake.record_attempt(
            attempt | {"outcome": "accepted", "status": 201, "code": None, "sid": resource["sid"]}
        )
        callbacks = fake.config  # read now: later reconfiguration must not alter this message
        if status_callback and callbacks.status_callbacks:
            task = asyncio.create_task(
                deliver_callbacks(
                    fake, generation, status_callback, resource, callbacks.model_copy()
                )
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
        if config.hold_after_accept_ms:
            await asyncio.sleep(config.hold_after_accept_ms / 1000)
        return JSONResponse(resource, status_code=201)

    @app.get(f"{messages_path}.json")
    async def list_messages(account_sid: str, request: Request) -> Response:
        config = fake.config
        if not authorized(request, account_sid, config):
            return unauthorized()
        query = request.query_params
        try:
            page_size = int(query.get("PageSize") or 50)
            page = int(query.get("Page") or 0)
            on = parse_day(query.get("DateSent"))
            # "?DateSent>=X" in a raw URL parses as key "DateSent>"; an encoded ">=" keeps it.
            since = parse_day(query.get("DateSent>=") or query.get("DateSent>"))
            until = parse_day(query.get("DateSent<=") or query.get("DateSent<"))
        except ValueError as exc:
            return twilio_error(400, 20001, f"Invalid query parameter: {exc}")
        if not 1 <= page_size <= MAX_PAGE_SIZE or page < 0:
            return twilio_error(400, 20001, "Invalid PageSize or Page.")
        found = fake.select(query.get("To"), query.get("From"), on, since, until)
        start = page * page_size
        chunk = found[start : start + page_size]
        path = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        items = query.multi_items()
        has_next = start + page_size < len(found)
        return JSONResponse(
            {
                "messages": chunk,
                "page": page,
                "page_size": page_size,
                "first_page_uri": f"{path}?{page_query(items, page_size, 0)}",
                "next_page_uri": (
                    f"{path}?{page_query(items, page_size, page + 1)}" if has_next else None
                ),
                "previous_page_uri": (
                    f"{path}?{page_query(items, page_size, page - 1)}" if page > 0 else None
                ),
                "uri": f"{path}?{page_query(items, page_size, page)}",
                "start": start,
                "end": start + max(len(chunk) - 1, 0),
            }
        )

    @app.get(f"{messages_path}/{{sid}}.json")
    async def get_message(account_sid: str, sid: str, request: Request) -> Response:
        if not authorized(request, account_sid, fake.config):
            return unauthorized()
        resource = fake.get(sid)
        if resource is None:
            path = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
            return twilio_error(404, 20404, f"The requested resource {path} was not found")
        return JSONResponse(resource)

    add_controls(app, fake)
    return app
