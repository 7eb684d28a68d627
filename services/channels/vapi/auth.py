"""How VAPI proves a server-URL request is its own (providers.md §3.4), one verifier per
`VAPI_AUTH_MODE`, all checked on the raw body before anything parses it:

- `secret`: the legacy inline secret, sent as `X-Vapi-Secret: <secret>`;
- `bearer`: a Bearer credential, `<header>: Bearer <token>` (header name configurable,
  default `Authorization`; `VAPI_BEARER_PREFIX=false` for the bare token, which is how
  VAPI's migration guide maps the legacy secret);
- `hmac`: an HMAC credential, `<signature header>: <prefix><hex|base64 HMAC(secret,
  payload)>`, where the payload is `VAPI_HMAC_PAYLOAD` with `{timestamp}` (the timestamp
  header's value), `{body}` (the raw body), `{method}` and `{url}` (this server URL)
  substituted. A template without `{timestamp}` is VAPI's `includeTimestamp: false`: no
  timestamp is read (an unsigned timestamp proves nothing).

The HMAC timestamp's unit is not documented (seconds or milliseconds, providers.md §3.4), so
it is decided by magnitude: a number above `MILLIS_ABOVE` (1e11, which as seconds is the
year 5138 and as milliseconds March 1973) is milliseconds, anything else seconds; an
ISO-8601 date is accepted too. A timestamp further than `VAPI_HMAC_TOLERANCE_S` from our
clock, either way, is refused.

Every comparison is constant time. `sign` produces valid headers for each mode, for the tests
and the fake VAPI.
"""

from __future__ import annotations

import base64
import hmac
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from services.channels.vapi.settings import EVENTS_PATH, VapiSettings

SECRET_HEADER = "X-Vapi-Secret"  # noqa: S105 - a header name, not a secret
BEARER_HEADER = "Authorization"
SIGNATURE_HEADER = "x-signature"
DEFAULT_HEADERS = {"secret": SECRET_HEADER, "bearer": BEARER_HEADER, "hmac": SIGNATURE_HEADER}

MILLIS_ABOVE = 1e11
"""A numeric timestamp above this is in milliseconds (see the module docstring)."""
MAX_HEADER_CHARS = 4096
_PLACEHOLDER = re.compile(r"\{(timestamp|body|method|url)\}")
_ANY_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_NUMBER = re.compile(r"[0-9]{1,20}(\.[0-9]{1,9})?")


class Verifier(Protocol):
    """Checks one request's credential; returns None when it is VAPI's, else a reason code
    (`missing_credential`, `bad_credential`, `bad_timestamp`, `stale_timestamp`)."""

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
        """`headers` as received (case-insensitive lookup), `body` raw, `now` epoch seconds."""
        ...


def _raw(value: str) -> bytes:
    # Header values arrive decoded as latin-1 (Starlette): encode back without loss, so
    # any byte sequence compares (and fails) instead of raising.
    return value.encode("latin-1", errors="replace")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    # Cut, not dropped: an absurd header is a wrong credential, not a missing one.
    return None if value is None else value[:MAX_HEADER_CHARS]


@dataclass(frozen=True)
class SecretVerifier:
    """`X-Vapi-Secret` (or another header) equals the secret."""

    secret: str
    header: str = SECRET_HEADER

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
        value = _header(headers, self.header)
        if not value:
            return "missing_credential"
        if not hmac.compare_digest(_raw(value.strip()), self.secret.encode()):
            return "bad_credential"
        return None


@dataclass(frozen=True)
class BearerVerifier:
    """`<header>: Bearer <token>` (or the bare token when `prefix` is off)."""

    token: str
    header: str = BEARER_HEADER
    prefix: bool = True

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
        value = _header(headers, self.header)
        if not value:
            return "missing_credential"
        value = value.strip()
        if self.prefix:
            scheme, _, value = value.partition(" ")
            if scheme.lower() != "bearer":
                return "bad_credential"
            value = value.strip()
        if not hmac.compare_digest(_raw(value), self.token.encode()):
            return "bad_credential"
        return None


@dataclass(frozen=True)
class HmacVerifier:
    """An HMAC over the raw body (and the timestamp, when the template signs one)."""

    secret: str
    algorithm: str = "sha256"
    header: str = SIGNATURE_HEADER
    prefix: str = ""
    timestamp_header: str = "x-timestamp"
    payload: str = "{timestamp}.{body}"
    encoding: str = "hex"
    tolerance_s: float = 300.0
    url: str = ""

    def __post_init__(self) -> None:
        # A template VAPI could never match is a configuration error: refuse to start.
        unknown = set(_ANY_PLACEHOLDER.findall(self.payload)) - {
            f"{{{name}}}" for name in ("timestamp", "body", "method", "url")
        }
        if unknown:
            raise ValueError(f"VAPI_HMAC_PAYLOAD: unsupported placeholders {sorted(unknown)}")
        if self.signs_timestamp and not self.timestamp_header:
            raise ValueError("VAPI_HMAC_PAYLOAD signs {timestamp}: set the timestamp header")
        if self.algorithm not in ("sha256", "sha512", "sha1"):
            raise ValueError(f"unsupported HMAC algorithm {self.algorithm!r}")

    @property
    def signs_timestamp(self) -> bool:
        """VAPI's `includeTimestamp`: the template has `{timestamp}`."""
        return "{timestamp}" in self.payload

    def signature(self, body: bytes, timestamp: str) -> str:
        """The header value VAPI sends for `body` signed at `timestamp` (prefix included)."""
        parts = {
            "timestamp": timestamp.encode(),
            "body": body,
            "method": b"POST",
            "url": self.url.encode(),
        }
        pieces: list[bytes] = []
        last = 0
        # One pass over the template: placeholder text inside the body is never substituted.
        for match in _PLACEHOLDER.finditer(self.payload):
            pieces.append(self.payload[last : match.start()].encode())
            pieces.append(parts[match.group(1)])
            last = match.end()
        pieces.append(self.payload[last:].encode())
        digest = hmac.new(self.secret.encode(), b"".join(pieces), self.algorithm).digest()
        encoded = digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
        return self.prefix + encoded

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
        given = _header(headers, self.header)
        if not given:
            return "missing_credential"
        timestamp = ""
        if self.signs_timestamp:
            timestamp = (_header(headers, self.timestamp_header) or "").strip()
            at = parse_timestamp(timestamp)
            if at is None:
                return "bad_timestamp"
            if abs(now - at) > self.tolerance_s:
                return "stale_timestamp"
        expected = self.signature(body, timestamp)
        given = given.strip()
        if self.encoding == "hex":
            # Hex is case-insensitive; the prefix (`sha256=`) is compared as configured.
            cut = len(self.prefix)
            given, expected = given[:cut] + given[cut:].lower(), expected.lower()
        if not hmac.compare_digest(_raw(given), expected.encode()):
            return "bad_credential"
        return None


def parse_timestamp(value: str) -> float | None:
    """Epoch seconds of an HMAC timestamp header: seconds or milliseconds (by magnitude,
    see `MILLIS_ABOVE`), or an ISO-8601 date (UTC when it names no zone). None: unreadable."""
    if not value or len(value) > 64:
        return None
    if _NUMBER.fullmatch(value):
        number = float(value)
        return number / 1000 if number > MILLIS_ABOVE else number
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    seconds = parsed.timestamp()
    return seconds if math.isfinite(seconds) else None


def events_url(settings: VapiSettings) -> str:
    """Our server URL as VAPI is given it (the `{url}` of an HMAC template)."""
    return settings.public_base_url.rstrip("/") + EVENTS_PATH


def verifier_for(settings: VapiSettings) -> SecretVerifier | BearerVerifier | HmacVerifier:
    """The verifier `settings.auth_mode` asks for (raises `ValueError` on a template that
    can never verify)."""
    secret = settings.server_secret.get_secret_value()
    header = settings.auth_header or DEFAULT_HEADERS[settings.auth_mode]
    if settings.auth_mode == "secret":
        return SecretVerifier(secret, header)
    if settings.auth_mode == "bearer":
        return BearerVerifier(secret, header, settings.bearer_prefix)
    return HmacVerifier(
        secret,
        algorithm=settings.hmac_algorithm,
        header=header,
        prefix=settings.hmac_prefix,
        timestamp_header=settings.hmac_timestamp_header,
        payload=settings.hmac_payload,
        encoding=settings.hmac_encoding,
        tolerance_s=settings.hmac_tolerance_s,
        url=events_url(settings),
    )


def sign(
    settings: VapiSettings, body: bytes, *, at: float | None = None, millis: bool = False
) -> dict[str, str]:
    """Headers VAPI would send with `body` under `settings` (for tests and the fake VAPI).

    `at` is the HMAC timestamp (epoch seconds, default now), written in milliseconds when
    `millis` is set.
    """
    verifier = verifier_for(settings)
    if isinstance(verifier, SecretVerifier):
        return {verifier.header: verifier.secret}
    if isinstance(verifier, BearerVerifier):
        token = f"Bearer {verifier.token}" if verifier.prefix else verifier.token
        return {verifier.header: token}
    moment = time.time() if at is None else at
    timestamp = str(int(moment * 1000)) if millis else str(int(moment))
    headers = {verifier.header: verifier.signature(body, timestamp)}
    if verifier.signs_timestamp:
        headers[verifier.timestamp_header] = timestamp
    return headers
