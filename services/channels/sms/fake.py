"""A fake Twilio Programmable Messaging REST server for tests, benchmarks and local runs.

It is a real HTTP server that speaks enough of Twilio's 2010-04-01 Messages API (see
``/work/shared/providers.md`` section 2) for our egress, or the official ``twilio`` SDK, to
work against it unchanged. The API base is the server root: give clients
``TWILIO_API_BASE=http://127.0.0.1:PORT``, and they call
``{base}/2010-04-01/Accounts/{AccountSid}/Messages.json``.

Twilio API (HTTP Basic auth ``AccountSid:AuthToken``; the path AccountSid must be the
configured one too, else 401 with code 20003 in Twilio's error envelope
``{"code", "message", "more_info", "status"}``):

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``: send a message. The body is
  ``application/x-www-form-urlencoded``: ``To`` (required), exactly one of ``From`` or
  ``MessagingServiceSid``, ``Body`` (at most 1600 characters) and/or ``MediaUrl``
  (repeatable), optional ``StatusCallback``; other fields are accepted and ignored. Blank
  values count as absent. Malformed requests get 400: no ``To`` 21604; neither or both of
  ``From`` / ``MessagingServiceSid`` 21603; no ``Body`` and no ``MediaUrl`` 21602; ``Body``
  too long 21617. Success is 201 with the message resource: ``sid`` (``SM`` + 32 hex),
  ``status`` ``queued`` (``accepted`` with a messaging service), ``num_segments`` (GSM-7
  160/153 or UCS-2 70/67 per segment; ``"0"`` with a messaging service, as Twilio does),
  RFC 2822 dates, ``direction`` ``outbound-api``, ``uri`` and ``subresource_uris``.
* ``GET /2010-04-01/Accounts/{AccountSid}/Messages.json``: a list page, newest first, with the
  optional filters ``To``, ``From``, ``DateSent`` (that day), ``DateSent<=`` / ``DateSent>=``
  (on or before / on or after; the SDK's ``DateSent<`` / ``DateSent>`` mean the same, which
  is what ``?DateSent<=2024-05-01`` in a raw URL parses to), all compared with the UTC
  creation date (``YYYY-MM-DD``; a longer ISO value is cut to its date), and ``PageSize``
  (default 50, at most 1000) with ``Page``. ``next_page_uri`` is null unless more remain.
* ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json``: one message, or 404 with
  code 20404.

Status callbacks: when an accepted message has a ``StatusCallback`` URL and
``status_callbacks`` is on, a background task POSTs form-encoded callbacks to it, each after
``callback_delay_ms``: first ``MessageStatus=sent``, then the final status. Fields:
``MessageSid``, ``SmsSid``, ``MessageStatus``, ``SmsStatus``, ``AccountSid``, ``From`` (left
out when a messaging service was used, as the fake picks no sender number),
``MessagingServiceSid`` (when used), ``To``, ``ApiVersion``, ``ErrorCode`` (final callback,
when ``callback_error_code`` is set) and ``RawDlrDoneDate`` (``YYMMDDhhmm`` UTC, on
delivered / undelivered). Each carries ``X-Twilio-Signature`` computed exactly as Twilio
does (``RequestValidator(auth_token).compute_signature(url, params)``). The stored message
follows the callbacks (``status``, ``date_sent``, ``error_code``), so polling it by sid sees
the same lifecycle; a message that gets no callbacks stays ``queued`` / ``accepted``. Every
callback attempt is recorded (url, params, signature, response status or error); a failing
receiver never disturbs the server. The callback switches are read when the message is
accepted, so reconfiguring later does not change callbacks already on their way, and a
reset drops them.

Controls for tests (not Twilio API, no auth): ``GET /_fake/messages`` (accepted messages,
oldest first: the resource plus ``status_callback``), ``GET /_fake/attempts``,
``GET /_fake/callbacks``, ``POST /_fake/reset`` (clears the records and restores the config
the server started with), ``POST /_fake/config`` (partial update; unknown fields get 422).
:class:`FakeTwilioServer` has the same as ``messages()``, ``attempts()``, ``callbacks()``,
``reset()`` and ``configure(**fields)``.

Behaviour is set by :class:`FakeTwilioConfig`:

* ``account_sid`` / ``auth_token``: the credentials (defaults :data:`DEV_ACCOUNT_SID` and
  :data:`DEV_AUTH_TOKEN`). The token is a secret: it never appears in logs, reprs or the
  config the controls return.
* ``rate_limit_per_second``: once that many requests have been let through within the last
  second, more get 429 with code 20429 and ``Retry-After: 1`` (the refused ones do not count
  towards the limit, so exactly that many per second get through).
* ``fail_next`` / ``fail_status`` / ``fail_code``: the next N requests fail with that HTTP
  status (default 500) and Twilio code (default 20429 for 429, 20500 for 5xx, else
  20000 + status).
* ``error_for_numbers``: ``{To number: Twilio code}``, answered as 400 with that code (e.g.
  21610 unsubscribed, 21211 invalid To, 21606 From not capable) every time until reset or
  reconfigured.
* ``latency_ms``: wait before accepting (the message is not recorded yet).
* ``hold_after_accept_ms``: wait after the message is recorded, before answering. This plays
  a client that dies between Twilio's acceptance and learning the sid: it times out, yet
  the message was sent.
* ``status_callbacks`` (default on), ``callback_delay_ms`` (default 50),
  ``callback_final_status`` (``delivered``, ``undelivered`` or ``failed``) and
  ``callback_error_code`` (e.g. 30003, sent as ``ErrorCode``).

Order of checks for a send: auth, form validation, then rate limit, ``fail_next``,
``error_for_numbers``, latency, record the message (now accepted by Twilio) and schedule
its callbacks, hold, answer 201. Every send that reaches the rate limit (authenticated and
well-formed) is recorded as an attempt with its outcome; accepted messages are recorded
separately.

Run it by hand: ``switchboard fake twilio --port 8010`` (or
``python -m services.channels.sms.fake --port 8010``), then send with
``curl -u AC00000000000000000000000000000000:dev-twilio-auth-token
--data-urlencode To=+15550001111 --data-urlencode From=+15550002222 -d Body=hi
http://127.0.0.1:8010/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json``
(``--data-urlencode``, because a bare ``+`` in a form body means a space).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import copy
import hmac
import secrets
import threading
import time
import urllib.parse
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any, Literal, NamedTuple

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from twilio.request_validator import RequestValidator

from services.fakes.threaded import ThreadedServer

DEV_ACCOUNT_SID = "AC" + "0" * 32
"""The account SID the fake accepts by default."""
DEV_AUTH_TOKEN = "dev-twilio-auth-token"  # noqa: S105 - a well-known dev credential, not a secret
"""The auth token the fake accepts (and signs callbacks with) by default."""

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
MAX_PAGE_SIZE = 1000
CALLBACK_TIMEOUT_S = 15.0  # Twilio's own webhook budget (providers.md 2.3)

# Messages Twilio gives for the codes tests are likely to inject via error_for_numbers.
_ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone "
    "number for this destination/account.",
    21608: "The number is unverified. Trial accounts may only send messages to verified numbers.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21635: "The 'To' number cannot receive messages: it is a landline.",
}

# GSM 03.38 basic character set (without the escape itself) and its extension table, whose
# characters take two septets (escape + char).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


class FakeTwilioConfig(BaseModel):
    """Behaviour switches of the fake Twilio; unknown fields are rejected.

    ``auth_token`` is a :class:`~pydantic.SecretStr` so it never shows in a repr or a JSON
    dump; read it with ``get_secret_value()``.
    """

    model_config = ConfigDict(extra="forbid")

    account_sid: str = DEV_ACCOUNT_SID
    auth_token: SecretStr = SecretStr(DEV_AUTH_TOKEN)
    latency_ms: int = Field(default=0, ge=0)
    hold_after_accept_ms: int = Field(default=0, ge=0)
    fail_next: int = Field(default=0, ge=0)
    fail_status: int = Field(default=500, ge=400, le=599)
    fail_code: int | None = None
    error_for_numbers: dict[str, int] = Field(default_factory=dict)
    rate_limit_per_second: int | None = Field(default=None, ge=0)
    status_callbacks: bool = True
    callback_delay_ms: int = Field(default=50, ge=0)
    callback_final_status: Literal["delivered", "undelivered", "failed"] = "delivered"
    callback_error_code: int | None = None

    def public(self) -> dict[str, Any]:
        """The config as JSON, with the auth token masked."""
        return self.model_dump(mode="json")


class _Failure(NamedTuple):
    """How a send fails: attempt outcome, HTTP status, Twilio code, extra headers."""

    outcome: Literal["rate_limited", "injected_failure", "number_error"]
    status: int
    code: int
    headers: dict[str, str] | None = None


class FakeTwilioState:
    """Config and records shared by the app and the tests (thread-safe).

    The app runs on uvicorn's event loop thread while tests read from theirs, so every
    access goes through one lock and readers get deep copies.
    """

    def __init__(self, config: FakeTwilioConfig | None = None) -> None:
        self.defaults = (config or FakeTwilioConfig()).model_copy(deep=True)
        self.config = self.defaults.model_copy(deep=True)
        # sid -> {"resource": ..., "status_callback": ..., "created": datetime}, oldest first
        self._messages: dict[str, dict[str, Any]] = {}
        self._attempts: list[dict[str, Any]] = []
        self._callbacks: list[dict[str, Any]] = []
        self._admitted: collections.deque[float] = collections.deque()
        # Bumped by reset(), so callbacks scheduled before it neither send nor record.
        self.generation = 0
        self._lock = threading.Lock()

    def configure(self, **fields: Any) -> FakeTwilioConfig:
        """Update some config fields (validated) and return the new config."""
        with self._lock:
            merged = {**self.config.model_dump(), **fields}
            self.config = FakeTwilioConfig.model_validate(merged)
            return self.config

    def reset(self) -> None:
        """Forget all records, drop pending callbacks, restore the construction-time config."""
        with self._lock:
            self.config = self.defaults.model_copy(deep=True)
            self._messages.clear()
            self._attempts.clear()
            self._callbacks.clear()
            self._admitted.clear()
            self.generation += 1

    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first: the resource plus ``status_callback``."""
        with self._lock:
            return [
                copy.deepcopy(m["resource"]) | {"status_callback": m["status_callback"]}
                for m in self._messages.values()
            ]

    def attempts(self) -> list[dict[str, Any]]:
        """Every authenticated, well-formed send with its outcome, oldest first."""
        with self._lock:
            return copy.deepcopy(self._attempts)

    def callbacks(self) -> list[dict[str, Any]]:
        """Every status callback attempt, oldest first."""
        with self._lock:
            return copy.deepcopy(self._callbacks)

    def take_failure(self, to: str) -> _Failure | None:
        """How this send must fail, if it must: rate limit, then ``fail_next``, then
        ``error_for_numbers``."""
        with self._lock:
            config = self.config
            now = time.monotonic()
            while self._admitted and self._admitted[0] <= now - 1.0:
                self._admitted.popleft()
            limit = config.rate_limit_per_second
            if limit is not None and len(self._admitted) >= limit:
                return _Failure("rate_limited", 429, 20429, {"Retry-After": "1"})
            self._admitted.append(now)
            if config.fail_next > 0:
                config.fail_next -= 1
                status = config.fail_status
                code = config.fail_code or _default_code(status)
                return _Failure("injected_failure", status, code)
            if to in config.error_for_numbers:
                return _Failure("number_error", 400, config.error_for_numbers[to])
            return None

    def record_attempt(self, attempt: dict[str, Any]) -> None:
        """Remember one send attempt and its outcome."""
        with self._lock:
            self._attempts.append(attempt)

    def accept(
        self, resource: dict[str, Any], status_callback: str | None, created: datetime
    ) -> None:
        """Record an accepted message: from here on Twilio would send it."""
        with self._lock:
            self._messages[resource["sid"]] = {
                "resource": resource,
                "status_callback": status_callback,
                "created": created,
            }

    def get(self, sid: str) -> dict[str, Any] | None:
        """A copy of the message resource with this sid, if any."""
        with self._lock:
            stored = self._messages.get(sid)
            return copy.deepcopy(stored["resource"]) if stored else None

    def select(
        self,
        to: str | None,
        from_: str | None,
        on: date | None,
        since: date | None,
        until: date | None,
    ) -> list[dict[str, Any]]:
        """Copies of the message resources matching the filters, newest first."""
        with self._lock:
            stored = list(self._messages.values())
        found = []
        for message in reversed(stored):
            resource, day = message["resource"], message["created"].date()
            if (
                (to is not None and resource["to"] != to)
                or (from_ is not None and resource["from"] != from_)
                or (on is not None and day != on)
                or (since is not None and day < since)
                or (until is not None and day > until)
            ):
                continue
            found.append(resource)
        with self._lock:
            return copy.deepcopy(found)

    def advance(
        self, generation: int, sid: str, status: str, error_code: int | None, at: datetime
    ) -> bool:
        """Move a stored message to ``status``; False if a reset dropped it meanwhile."""
        with self._lock:
            stored = self._messages.get(sid)
            if generation != self.generation or stored is None:
                return False
            resource = stored["resource"]
            resource["status"] = status
            resource["date_updated"] = _rfc2822(at)
            if status == "sent":
                resource["date_sent"] = _rfc2822(at)
            if status != "sent" and error_code is not None:
                resource["error_code"] = error_code
            return True

    def record_callback(self, generation: int, callback: dict[str, Any]) -> None:
        """Remember one callback attempt, unless a reset happened since it was scheduled."""
        with self._lock:
            if generation == self.generation:
                self._callbacks.append(callback)


def _default_code(status: int) -> int:
    """Twilio's code for an injected HTTP failure without an explicit ``fail_code``."""
    if status == 429:
        return 20429
    if status >= 500:
        return 20500
    return 20000 + status


def _rfc2822(moment: datetime) -> str:
    """A timestamp the way Twilio writes them, e.g. ``Wed, 01 May 2024 12:00:00 GMT``."""
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def _twilio_error(
    status: int, code: int, message: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A response in Twilio's REST error envelope."""
    body = {
        "code": code,
        "message": message or _ERROR_MESSAGES.get(code, f"Error {code} (fake Twilio)."),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _unauthorized() -> JSONResponse:
    return _twilio_error(401, 20003, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})


def _authorized(request: Request, path_account_sid: str, config: FakeTwilioConfig) -> bool:
    """Whether the request carries the configured Basic credentials for this account path."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    sid = config.account_sid.encode()
    token = config.auth_token.get_secret_value().encode()
    # Constant-time comparisons, all evaluated, so timing does not reveal which part is wrong.
    checks = [
        bool(sep),
        hmac.compare_digest(user, sid),
        hmac.compare_digest(password, token),
        hmac.compare_digest(path_account_sid.encode(), sid),
    ]
    return all(checks)


def count_segments(body: str) -> int:
    """SMS segments for ``body``: GSM-7 160 single / 153 concatenated, else UCS-2 70 / 67.

    GSM-7 extension characters take two septets and UCS-2 characters outside the BMP two
    code units; neither pair is split across segments. An empty body (MMS) is one segment.
    """
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in body):
        units = [2 if c in _GSM7_EXTENSION else 1 for c in body]
        single, multi = 160, 153
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in body]
        single, multi = 70, 67
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for unit in units:
        if used + unit > multi:
            segments, used = segments + 1, 0
        used += unit
    return segments


def _parse_day(value: str | None) -> date | None:
    """The date of a ``DateSent`` filter value (``YYYY-MM-DD`` or a longer ISO timestamp)."""
    if value is None or value == "":
        return None
    return date.fromisoformat(value[:10])


def _message_resource(
    account_sid: str,
    to: str,
    from_: str | None,
    service_sid: str | None,
    body: str,
    media_urls: list[str],
    created: datetime,
) -> dict[str, Any]:
    """The JSON Twilio answers a successful send with."""
    sid = "SM" + secrets.token_hex(16)
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": _rfc2822(created),
        "date_sent": None,
        "date_updated": _rfc2822(created),
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": service_sid,
        "num_media": str(len(media_urls)),
        # Twilio reports 0 segments while a messaging service has yet to pick the sender.
        "num_segments": "0" if service_sid else str(count_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service_sid else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": to,
        "uri": f"{uri}.json",
    }


def _validate_send(form: dict[str, list[str]]) -> int | None:
    """The Twilio code a malformed send gets, or None if it is well-formed."""

    def given(name: str) -> bool:
        return any(v != "" for v in form.get(name, []))

    if not given("To"):
        return 21604
    if given("From") == given("MessagingServiceSid"):
        return 21603
    if not given("Body") and not given("MediaUrl"):
        return 21602
    if len(_first(form, "Body") or "") > MAX_BODY_CHARS:
        return 21617
    return None


def _first(form: dict[str, list[str]], name: str) -> str | None:
    """The first non-blank value of a form field, if any."""
    return next((v for v in form.get(name, []) if v != ""), None)


def _page_query(params: list[tuple[str, str]], page_size: int, page: int) -> str:
    """The query string of a list page URI: the filters, then ``PageSize`` and ``Page``."""
    kept = [(k, v) for k, v in params if k not in ("PageSize", "Page", "PageToken")]
    return urllib.parse.urlencode([*kept, ("PageSize", str(page_size)), ("Page", str(page))])


async def _deliver(
    state: FakeTwilioState,
    generation: int,
    url: str,
    resource: dict[str, Any],
    config: FakeTwilioConfig,
) -> None:
    """Send the ``sent`` then the final status callback for one accepted message."""
    delay = config.callback_delay_ms / 1000
    validator = RequestValidator(config.auth_token.get_secret_value())
    base = {
        "MessageSid": resource["sid"],
        "SmsSid": resource["sid"],
        "AccountSid": resource["account_sid"],
        "To": resource["to"],
        "ApiVersion": API_VERSION,
    }
    if resource["from"] is not None:
        base["From"] = resource["from"]
    if resource["messaging_service_sid"] is not None:
        base["MessagingServiceSid"] = resource["messaging_service_sid"]
    final = config.callback_final_status
    async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_S) as client:
        for status in ("sent", final):
            await asyncio.sleep(delay)
            now = datetime.now(UTC)
            error_code = config.callback_error_code if status == final else None
            if not state.advance(generation, resource["sid"], status, error_code, now):
                return  # reset meanwhile: Twilio "forgot" this message
            params = base | {"MessageStatus": status, "SmsStatus": status}
            if error_code is not None:
                params["ErrorCode"] = str(error_code)
            if status in ("delivered", "undelivered"):
                params["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
            signature = validator.compute_signature(url, params)
            record: dict[str, Any] = {
                "url": url,
                "params": params,
                "signature": signature,
                "status_code": None,
                "error": None,
            }
            try:
                response = await client.post(
                    url,
                    data=params,
                    headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
                )
                record["status_code"] = response.status_code
            except Exception as exc:  # any receiver failure is recorded, never raised
                record["error"] = f"{type(exc).__name__}: {exc}"
            state.record_callback(generation, record)


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
        return _twilio_error(exc.status_code, code, str(exc.detail))

    @app.post(f"{messages_path}.json")
    async def send_message(account_sid: str, request: Request) -> Response:
        config = fake.config
        if not _authorized(request, account_sid, config):
            return _unauthorized()
        raw = (await request.body()).decode("utf-8", errors="replace")
        form: dict[str, list[str]] = {}
        for name, value in urllib.parse.parse_qsl(raw, keep_blank_values=True):
            form.setdefault(name, []).append(value)
        invalid = _validate_send(form)
        if invalid is not None:
            return _twilio_error(400, invalid)

        to = _first(form, "To") or ""
        from_ = _first(form, "From")
        service_sid = _first(form, "MessagingServiceSid")
        body = _first(form, "Body") or ""
        media_urls = [v for v in form.get("MediaUrl", []) if v != ""]
        status_callback = _first(form, "StatusCallback")
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
            return _twilio_error(failure.status, failure.code, headers=failure.headers)
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)

        created = datetime.now(UTC)
        resource = _message_resource(
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
                _deliver(fake, generation, status_callback, resource, callbacks.model_copy())
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
        if config.hold_after_accept_ms:
            await asyncio.sleep(config.hold_after_accept_ms / 1000)
        return JSONResponse(resource, status_code=201)

    @app.get(f"{messages_path}.json")
    async def list_messages(account_sid: str, request: Request) -> Response:
        config = fake.config
        if not _authorized(request, account_sid, config):
            return _unauthorized()
        query = request.query_params
        try:
            page_size = int(query.get("PageSize") or 50)
            page = int(query.get("Page") or 0)
            on = _parse_day(query.get("DateSent"))
            # "?DateSent>=X" in a raw URL parses as key "DateSent>"; an encoded ">=" keeps it.
            since = _parse_day(query.get("DateSent>=") or query.get("DateSent>"))
            until = _parse_day(query.get("DateSent<=") or query.get("DateSent<"))
        except ValueError as exc:
            return _twilio_error(400, 20001, f"Invalid query parameter: {exc}")
        if not 1 <= page_size <= MAX_PAGE_SIZE or page < 0:
            return _twilio_error(400, 20001, "Invalid PageSize or Page.")
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
                "first_page_uri": f"{path}?{_page_query(items, page_size, 0)}",
                "next_page_uri": (
                    f"{path}?{_page_query(items, page_size, page + 1)}" if has_next else None
                ),
                "previous_page_uri": (
                    f"{path}?{_page_query(items, page_size, page - 1)}" if page > 0 else None
                ),
                "uri": f"{path}?{_page_query(items, page_size, page)}",
                "start": start,
                "end": start + max(len(chunk) - 1, 0),
            }
        )

    @app.get(f"{messages_path}/{{sid}}.json")
    async def get_message(account_sid: str, sid: str, request: Request) -> Response:
        if not _authorized(request, account_sid, fake.config):
            return _unauthorized()
        resource = fake.get(sid)
        if resource is None:
            path = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
            return _twilio_error(404, 20404, f"The requested resource {path} was not found")
        return JSONResponse(resource)

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
            return _twilio_error(422, 20001, str(exc))

    return app


class FakeTwilioServer(ThreadedServer):
    """Runs the fake in a background thread: ``with``/``async with``, or ``start()``/``stop()``.

    ``port=0`` picks a free port; the socket is bound in :meth:`start` before uvicorn runs,
    so :attr:`port` and :attr:`base_url` are right as soon as it returns.
    """

    label = "fake Twilio server"

    def __init__(
        self, config: FakeTwilioConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.state = FakeTwilioState(config)

    def app(self) -> FastAPI:
        """The fake's ASGI app, bound to this server's state."""
        return create_app(self.state)

    @property
    def base_url(self) -> str:
        """The API base to give clients (``TWILIO_API_BASE``), e.g. ``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def messages_url(self) -> str:
        """The ``Messages.json`` URL of the configured account."""
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    @property
    def account_sid(self) -> str:
        """The account SID the server currently accepts."""
        return self.state.config.account_sid

    @property
    def auth_token(self) -> str:
        """The auth token the server currently accepts and signs callbacks with."""
        return self.state.config.auth_token.get_secret_value()

    @property
    def config(self) -> FakeTwilioConfig:
        """A copy of the current config."""
        return self.state.config.model_copy(deep=True)

    def configure(self, **fields: Any) -> FakeTwilioConfig:
        """Change behaviour switches; see :class:`FakeTwilioConfig`."""
        return self.state.configure(**fields)

    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first (resource plus ``status_callback``)."""
        return self.state.messages()

    def attempts(self) -> list[dict[str, Any]]:
        """Authenticated, well-formed send attempts with their outcomes, oldest first."""
        return self.state.attempts()

    def callbacks(self) -> list[dict[str, Any]]:
        """Status callback attempts (url, params, signature, status_code, error)."""
        return self.state.callbacks()

    def reset(self) -> None:
        """Clear the records, drop pending callbacks and restore the starting config."""
        self.state.reset()


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the fake until interrupted."""
    parser = argparse.ArgumentParser(description="Fake Twilio Programmable Messaging server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--account-sid", default=DEV_ACCOUNT_SID)
    parser.add_argument(
        "--auth-token", default=DEV_AUTH_TOKEN, help="the token to accept (default: dev token)"
    )
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args(argv)
    config = FakeTwilioConfig(
        account_sid=args.account_sid,
        auth_token=SecretStr(args.auth_token),
        latency_ms=args.latency_ms,
    )
    app = create_app(FakeTwilioState(config))
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
