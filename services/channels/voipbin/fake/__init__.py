"""A fake VoIPBin for tests, benchmarks and local runs: REST API, event emitter, fetch driver.

It is a real HTTP server that speaks VoIPBin's wire format as ``/work/shared/providers.md``
section 1 describes it (checked against VoIPBin's source). Give clients the API base
:attr:`FakeVoipbinServer.api_base` (``http://127.0.0.1:PORT/v1.0``); every path below is
relative to it.

Authentication (providers.md 1.1): the middleware looks for a *token* first (cookie
``token``, query ``?token=``, then ``Authorization: Bearer <jwt>``), then for an *accesskey*
(cookie ``accesskey``, then query ``?accesskey=``). The fake issues no JWTs, so any token
fails with 401 ``INVALID_CREDENTIALS``; that is exactly what happens in VoIPBin to an
accesskey sent as a Bearer header (it is parsed as a JWT), even when a valid ``?accesskey=``
is present too. No credential at all gets 401 ``AUTHENTICATION_REQUIRED``; a wrong accesskey
401 ``INVALID_CREDENTIALS``.

Errors use VoIPBin's envelope ``{"error": {"status", "reason", "message", "request_id"}}``.
``status`` is VoIPBin's canonical status name (``INVALID_ARGUMENT`` 400, ``UNAUTHENTICATED``
401, ``NOT_FOUND`` 404, ``FAILED_PRECONDITION`` 409, ``RESOURCE_EXHAUSTED`` 429, ``INTERNAL``
500, ``UNAVAILABLE`` 502/503/504). Reasons used: ``AUTHENTICATION_REQUIRED``,
``INVALID_CREDENTIALS``, ``INVALID_JSON_BODY``, ``INVALID_ID``, ``INVALID_ARGUMENT``,
``INVALID_ACTION_TYPE``, ``RESOURCE_NOT_FOUND``, ``STATE_INVALID``, ``RATE_LIMIT_EXCEEDED``,
``INTERNAL``, ``UNAVAILABLE``.

REST endpoints (providers.md 1.2; ids are UUIDs, a malformed one gets 400 ``INVALID_ID``,
an unknown one 404 ``RESOURCE_NOT_FOUND``; lists are ``{"result": [...], "next_page_token"}``,
newest first, ``page_size`` at most 100, ``page_token`` = the ``tm_create`` of the last item
of the previous page, so the last page is followed by an empty one):

* ``GET /customer``: the self view, including ``webhook_secret``. ``PUT /customer``: updates
  the fields given (``webhook_uri``, ``webhook_method`` in POST|PUT|GET|DELETE, ``name``,
  ``detail``, ``email``, ``phone_number``, ``address``); answers the customer without the secret.
* ``POST /flows`` ``{name, detail, actions, on_complete_flow_id?}``, ``GET /flows``,
  ``GET|PUT|DELETE /flows/{id}``, ``POST /flows/{id}/direct-hash-regenerate``. Actions are
  checked against VoIPBin's list of types (an unknown one gets 400 ``INVALID_ACTION_TYPE``)
  and each stored action gets an ``id`` (and a nil ``next_id``) when it has none. A flow's
  ``direct_hash`` is ``"direct." + 12 lowercase hex`` from 6 random bytes, never derived from
  an id; regenerating replaces it and the old one stops routing at once.
* ``POST /calls`` ``{source, destinations, flow_id? | actions?, anonymous?, variables?}``:
  200 ``{"calls": [...], "groupcalls": [...]}``. ``tel`` and ``extension`` destinations are
  dialled through a groupcall (the call id is in ``groupcalls[i].call_ids[0]`` and ``calls``
  stays empty for them); other destinations appear in ``calls``. ``flow_id`` wins over
  ``actions``; ``variables`` must be strings, at most 100 keys and 64 KB (else 400), and are
  not stored (the flow engine is not modelled; the request record keeps them).
  ``GET /calls``, ``GET /calls/{id}``, ``POST /calls/{id}/hangup`` (the call
  is answered with status ``hangup``, ``hangup_by`` ``local``), ``POST /calls/{id}/talk``
  ``{text, language, provider, voice_id}`` (200, empty body).
* ``POST /speakings`` ``{reference_type: "call", reference_id, language, provider, voice_id,
  direction}``: **201**, answered with status ``initiating``; the stored session is
  ``active`` right after. ``GET /speakings/{id}``; ``POST /speakings/{id}/say`` ``{text}``,
  ``/flush``, ``/stop``: 200 with the speaking.
* ``POST /transcribes`` ``{reference_type: "call", reference_id, language, direction:
  in|out|both, provider?, on_end_flow_id?}``: 200, status ``progressing``.
  ``GET /transcribes[?reference_type=&reference_id=]``, ``GET /transcribes/{id}``,
  ``POST /transcribes/{id}/stop`` (status ``done``).

Call state: talk, speakings (create, say, flush) and transcribes (create) need the call to be
``progressing``; otherwise 409 ``STATE_INVALID``, as providers.md 1.7/1.8 say. Say/flush on a
stopped speaking is 409 ``STATE_INVALID`` too. A hangup (by API or by
:meth:`FakeVoipbinServer.set_call_status`) stops the call's speakings and transcribes. Outbound
calls start in ``outbound_call_status`` (default ``dialing``); move any call on with
``set_call_status`` / ``POST /_fake/calls/{id}/status``. Incoming calls come from
:meth:`FakeVoipbinServer.dial` (a caller dialling a Direct Hash SIP URI, which runs that flow)
or :meth:`FakeVoipbinServer.add_call`.

Customer event webhooks (providers.md 1.5): :meth:`FakeVoipbinServer.emit` /
``POST /_fake/emit`` send ``{"type", "data"}`` (compact JSON as Go writes it, ``<``, ``>`` and
``&`` escaped as ``\\u003c`` ...) with ``Content-Type: application/json`` to the customer's
``webhook_uri`` with its ``webhook_method``, signed with ``X-Voipbin-Signature: sha256=<hex
HMAC-SHA256(webhook_secret, raw body)>`` (Go's canonical spelling of ``X-VoIPBIN-Signature``;
unsigned when there is no secret). Up to ``webhook_max_attempts`` attempts,
``webhook_retry_delay_ms`` apart, on connection errors or 5xx; any other status counts as
delivered. Every attempt is recorded with its response. Duplicates and reordering are just
more ``emit`` calls. Event ``data`` builders: the stored resources themselves (``call()``,
``transcribe()``, ``speaking()``: a resource *is* its WebhookMessage), :func:`transcript_data`
(``transcript_created``) and :func:`speech_data` (``transcribe_speech_started`` /
``_interim`` / ``_ended``); ``emit_call``, ``emit_transcript``, ``emit_speech``,
``emit_speaking`` and ``emit_transcribe`` build and send in one go.

``fetch`` driver (providers.md 1.4a): :func:`fetch_actions` / :meth:`FakeVoipbinServer.fetch` /
``POST /_fake/fetch`` send ``event_method`` to ``event_url`` with ``Content-Type:
application/json; charset=utf-8`` and the body ``{"activeflow_id", "reference_id"}`` (no
signature), with no timeout unless one is given (VoIPBin uses a bare Go ``http.Client``), and
report status, elapsed time and the parsed actions. The reply is valid only with HTTP 200 and
a bare JSON array of action objects whose ``type`` is in :data:`ACTION_TYPES`; problems are
reported in ``errors``, never raised.

Switches (:class:`FakeVoipbinConfig`, also ``POST /_fake/config``; unknown fields get 422):

* ``access_key`` / ``webhook_secret``: secrets (``SecretStr``), never logged, never in a repr
  or in the config the controls return. ``webhook_secret=None`` sends events unsigned and
  ``GET /customer`` reports an empty secret. ``customer_id``: the customer's UUID.
* ``latency_ms``: wait before handling an admitted request.
* ``fail_next`` / ``fail_status`` (429, 500, 502, 503, 504): the next N admitted requests fail.
* ``rate_limit_per_second``: once that many requests were admitted within the last second,
  more get 429 ``RATE_LIMIT_EXCEEDED`` (refused ones do not count).
* ``retry_after``: when set, every 429 carries ``Retry-After: <seconds>`` (the VoIPBin docs
  disagree on whether it is sent, so the default sends none).
* ``outbound_call_status``: the status ``POST /calls`` creates calls in.
* ``empty_direct_hash``: new flows get ``direct_hash: ""`` (as agents and AIs do), so clients
  must call ``direct-hash-regenerate``; ``clear_direct_hash(flow_id)`` empties one flow's.
* ``webhook_max_attempts`` (3), ``webhook_retry_delay_ms`` (1000), ``webhook_timeout_s`` (30).

Order of checks for an API request: route (unknown paths get a 404 envelope), auth, rate
limit, ``fail_next``, latency, then the endpoint's own validation and state checks. Every
request under ``/v1.0`` is recorded (method, path, query without ``accesskey``/``token``, JSON
body, how it authenticated, response status), whatever its outcome.

Controls for tests (no auth): ``GET /_fake/requests``, ``/_fake/deliveries``,
``/_fake/speech`` (successful say/flush/stop/talk in order, ``?call_id=``; each entry's ``at``
is the fake's ``time.monotonic()`` when it was carried out, for latency measurements),
``/_fake/fetches``, ``/_fake/resources``, ``GET|POST /_fake/config``, ``POST /_fake/reset``
(records and resources cleared, starting config restored), ``POST /_fake/calls``
(``{"sip_uri"|"direct_hash", "source", "status"}`` dials a flow; ``{"source", "destination",
"flow_id", "status", "direction"}`` adds a call), ``POST /_fake/calls/{id}/status``
``{"status", "emit"}``, ``POST /_fake/flows/{id}/clear-direct-hash``, ``POST /_fake/emit``
``{"type", "data", "sign", "signature", "uri"}``, ``POST /_fake/fetch`` ``{"url", "method",
"activeflow_id", "reference_id", "timeout"}``.

Run it by hand: ``python -m services.channels.voipbin.fake --port 8020``, then
``curl 'http://127.0.0.1:8020/v1.0/customer?accesskey=dev-voipbin-accesskey'``. Access logs
are off because the accesskey travels in the query string.

Layout of this package (the names below are re-exported here; import them from
``services.channels.voipbin.fake``):

* :mod:`.config`: wire constants (``API_PREFIX``, ``ACTION_TYPES``, ``CallStatus`` ...) and
  :class:`FakeVoipbinConfig`;
* :mod:`.errors`: :class:`ApiError` and :func:`error_envelope`;
* :mod:`.wire`: :func:`sip_uri`, :func:`new_direct_hash`, :func:`go_json`, :func:`address_of`;
* :mod:`.actions`: action checks (:func:`validate_action_array`);
* :mod:`.state`: :class:`FakeVoipbinState`, one mixin per resource group;
* :mod:`.rest`: the ``/v1.0`` request pipeline and endpoints (customer and flows, calls,
  speakings and transcribes);
* :mod:`.events`: :func:`transcript_data`, :func:`speech_data`, :func:`sign_body`,
  :func:`deliver_event`;
* :mod:`.fetch`: :func:`fetch_actions` and :class:`FetchResult`;
* :mod:`.controls`: the ``/_fake`` endpoints; :mod:`.app`: :func:`create_app`;
* :mod:`.server`: :class:`FakeVoipbinServer` (with :mod:`.server_inspection` and
  :mod:`.server_driving`) and :func:`main`; :mod:`.__main__` runs ``main``.

Not modelled, and why:

* JWT login (``POST /auth/login``) and token auth: the issue uses accesskeys only, so any token
  is refused (which is also what a Bearer accesskey gets in VoIPBin).
* Activeflows and the per-activeflow second webhook destination; agents, AIs, extensions and
  other direct-hash owners; call control beyond talk/hangup (mute, hold, recording, ...).
* The flow engine: flows are stored, never executed, so the fake neither calls ``fetch`` nor
  emits events by itself; tests drive both explicitly. No ``${var}`` substitution.
* SSRF checks on webhook URIs (VoIPBin refuses private and loopback addresses, which would
  make local testing impossible), TLS, permissions on ``GET /customer``, account freezing.
* Real media: ``say`` text is queued nowhere; speakings jump from ``initiating`` to ``active``.
"""

from __future__ import annotations

from services.channels.voipbin.fake.actions import validate_action_array
from services.channels.voipbin.fake.app import create_app
from services.channels.voipbin.fake.config import (
    ACTION_TYPES,
    ADDRESS_TYPES,
    API_PREFIX,
    CALL_STATUSES,
    DEV_ACCESS_KEY,
    DEV_CUSTOMER_ID,
    DEV_WEBHOOK_SECRET,
    NIL_UUID,
    SIGNATURE_HEADER,
    SIP_DOMAIN,
    CallStatus,
    FakeVoipbinConfig,
)
from services.channels.voipbin.fake.errors import ApiError, error_envelope
from services.channels.voipbin.fake.events import (
    deliver_event,
    sign_body,
    speech_data,
    transcript_data,
)
from services.channels.voipbin.fake.fetch import FetchResult, fetch_actions
from services.channels.voipbin.fake.server import FakeVoipbinServer, main
from services.channels.voipbin.fake.state import FakeVoipbinState
from services.channels.voipbin.fake.wire import address_of, go_json, new_direct_hash, sip_uri

__all__ = [
    "ACTION_TYPES",
    "ADDRESS_TYPES",
    "API_PREFIX",
    "CALL_STATUSES",
    "DEV_ACCESS_KEY",
    "DEV_CUSTOMER_ID",
    "DEV_WEBHOOK_SECRET",
    "NIL_UUID",
    "SIGNATURE_HEADER",
    "SIP_DOMAIN",
    "ApiError",
    "CallStatus",
    "FakeVoipbinConfig",
    "FakeVoipbinServer",
    "FakeVoipbinState",
    "FetchResult",
    "address_of",
    "create_app",
    "deliver_event",
    "error_envelope",
    "fetch_actions",
    "go_json",
    "main",
    "new_direct_hash",
    "sign_body",
    "sip_uri",
    "speech_data",
    "transcript_data",
    "validate_action_array",
]
