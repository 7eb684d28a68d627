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

Modules: :mod:`.config` (constants, switches), :mod:`.state` (records, admission),
:mod:`.app` (the Messages API routes) and :mod:`.controls` (``/_fake``), :mod:`.auth`,
:mod:`.errors` (Twilio's envelope), :mod:`.wire` (the message resource, form checks,
segments, paging), :mod:`.callbacks` (status callbacks), :mod:`.server` (background
thread, ``main``).
"""

from __future__ import annotations

from services.channels.sms.fake.app import create_app
from services.channels.sms.fake.config import (
    API_VERSION,
    CALLBACK_TIMEOUT_S,
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    MAX_BODY_CHARS,
    MAX_PAGE_SIZE,
    FakeTwilioConfig,
)
from services.channels.sms.fake.server import FakeTwilioServer, main
from services.channels.sms.fake.state import FakeTwilioState
from services.channels.sms.fake.wire import count_segments

__all__ = [
    "API_VERSION",
    "CALLBACK_TIMEOUT_S",
    "DEV_ACCOUNT_SID",
    "DEV_AUTH_TOKEN",
    "MAX_BODY_CHARS",
    "MAX_PAGE_SIZE",
    "FakeTwilioConfig",
    "FakeTwilioServer",
    "FakeTwilioState",
    "count_segments",
    "create_app",
    "main",
]
