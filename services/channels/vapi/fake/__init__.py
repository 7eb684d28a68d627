"""A fake VAPI for tests, benchmarks and local runs: REST API, call driver, control URLs.

It is a real HTTP server that speaks VAPI's wire format as ``/work/shared/providers.md``
section 3 describes it (checked against VAPI's OpenAPI spec). Give clients
:attr:`FakeVapiServer.base_url` as the API base (``https://api.vapi.ai``): the REST paths sit
at the root, as on VAPI.

REST (``Authorization: Bearer <private key>``; no header 401 "Missing Authorization Header",
a wrong key or the public key 401 "Invalid Key..."). Errors are NestJS bodies
``{"message": str | [str], "error": "Not Found", "statusCode": 404}``; an unknown route is 404
"Cannot GET /x". Validation errors are 400 with a list of messages, and unknown properties are
refused ("property X should not exist"), so typos fail loudly:

* ``POST /assistant`` (201), ``GET /assistant`` (a bare array, newest first, ``?limit=``),
  ``GET|PATCH|DELETE /assistant/{id}``. PATCH replaces the top-level fields it names. A
  ``custom-llm`` model needs ``url`` and ``model``; ``serverMessages`` must be in VAPI's enum;
  ``server.credentialId`` and ``credentialIds`` must name existing credentials.
* ``POST /call`` ``{assistantId | assistant, phoneNumberId, customer: {number}}``: 201, an
  ``outboundPhoneCall`` ``queued``, with ``monitor.controlUrl``; the callee "picks up" when a
  test calls :meth:`FakeVapiServer.answer_call`. ``GET /call``, ``GET /call/{id}``.
* ``GET /phone-number``, ``GET|PATCH /phone-number/{id}`` (``server``, ``assistantId`` ...).
  The organisation owns ``config.phone_numbers`` from the start (:data:`DEV_PHONE_NUMBER_ID`).
* ``POST /credential`` (``{"provider": "custom-llm", "apiKey"}`` or ``{"provider":
  "custom-credential", "authenticationPlan": {type: bearer|hmac|oauth2, ...}}``), ``GET
  /credential``, ``GET /credential/{id}``. Answers and records mask every secret (``***``).

Switches (:class:`FakeVapiConfig`, also ``POST /_fake/config``): ``latency_ms``,
``fail_next``/``fail_status`` (429, 5xx), ``rate_limit_per_second``, ``retry_after`` (seconds
sent with every 429, default 1), ``control_auth_required``, ``public_url`` (what control URLs
start with), ``hmac_timestamp_unit``, the keys, the seeded phone numbers. Checks run in this
order: route, key, rate limit, ``fail_next``, latency, the endpoint.

The call driver (:meth:`FakeVapiServer.start_call` / ``astart_call``, ``POST /_fake/calls``)
plays a call as VAPI does (see :mod:`.driver`): ``assistant-request`` to the phone number's
server (7.5 s, else ``assistant-request-failed``), ``status-update`` ``in-progress``, the first
message, one custom-LLM request per caller line read strictly (``pipeline-error-custom-llm-*``
on a chunk without ``choices``, a stream without ``[DONE]``, a non-2xx, a timeout),
barge-in (``interrupt_after_chars``, then ``user-interrupted`` and the heard text as the
assistant's turn in the next ``messages``), ``status-update`` ``ended`` and
``end-of-call-report``. Requests are signed per :class:`ServerAuth` (legacy secret, Bearer,
HMAC). Targets come from the fake's resources (what ``switchboard vapi setup`` made) unless
given (:class:`CallTarget`). Everything is recorded in :class:`CallResult`.

Control URLs: ``POST /control/{call_id}`` (see :mod:`.live_control`).

Controls for tests (no auth): ``GET /_fake/requests``, ``/_fake/control[?call_id=]``,
``/_fake/resources``, ``/_fake/calls/{id}`` (a finished call's result), ``POST /_fake/calls``
(drive a call, see :func:`call_options`), ``GET|POST /_fake/config``, ``POST /_fake/reset``.

Run it by hand: ``python -m services.channels.vapi.fake --port 8030`` (or ``switchboard fake
vapi``), then ``curl -H 'Authorization: Bearer dev-vapi-private-key'
http://127.0.0.1:8030/assistant``.

Not modelled: squads, workflows, tools other than ``endCall``/``transferCall`` (a function tool
is recorded, not run), OAuth2 credentials (no signing), ``server.backoffPlan`` (VAPI's
default is no retry, and so is the fake's), audio (``listenUrl`` is advertised, not served),
partial transcripts, ``hang``, and what a ``say`` mid-stream does to the stream (it is only
flagged ``during_stream``).
"""

from __future__ import annotations

from services.channels.vapi.fake.app import create_app
from services.channels.vapi.fake.calling import call_options, drive_call
from services.channels.vapi.fake.config import (
    ASSISTANT_REQUEST_TIMEOUT_S,
    DEFAULT_SERVER_MESSAGES,
    DEV_PHONE_NUMBER,
    DEV_PHONE_NUMBER_ID,
    DEV_PRIVATE_KEY,
    DEV_PUBLIC_KEY,
    FakeVapiConfig,
    PhoneNumberSeed,
)
from services.channels.vapi.fake.errors import ApiError, error_body
from services.channels.vapi.fake.result import CallResult, Line, SentMessage, Turn
from services.channels.vapi.fake.server import FakeVapiServer, main
from services.channels.vapi.fake.signing import ServerAuth
from services.channels.vapi.fake.state import FakeVapiState
from services.channels.vapi.fake.stream import StreamOutcome, read_answer, spoken
from services.channels.vapi.fake.target import CallTarget

__all__ = [
    "ASSISTANT_REQUEST_TIMEOUT_S",
    "DEFAULT_SERVER_MESSAGES",
    "DEV_PHONE_NUMBER",
    "DEV_PHONE_NUMBER_ID",
    "DEV_PRIVATE_KEY",
    "DEV_PUBLIC_KEY",
    "ApiError",
    "CallResult",
    "CallTarget",
    "FakeVapiConfig",
    "FakeVapiServer",
    "FakeVapiState",
    "Line",
    "PhoneNumberSeed",
    "SentMessage",
    "ServerAuth",
    "StreamOutcome",
    "Turn",
    "call_options",
    "create_app",
    "drive_call",
    "error_body",
    "main",
    "read_answer",
    "spoken",
]
