"""How VAPI authenticates its requests to a server URL (providers.md 3.4), as the fake signs them.

:class:`ServerAuth` is one of three modes:

* ``secret``: the legacy inline ``server.secret``, sent as ``X-Vapi-Secret: <secret>``;
* ``bearer``: a Bearer credential ``{token, headerName (Authorization), bearerPrefixEnabled
  (true)}``, sent as ``<header>: Bearer <token>`` (or the bare token);
* ``hmac``: an HMAC credential ``{secretKey, algorithm, signatureHeader (x-signature),
  timestampHeader (x-timestamp), signaturePrefix, includeTimestamp (true), payloadFormat
  ("{timestamp}.{body}"), signatureEncoding (hex), secretIsBase64, messageIdHeader}``, computed
  over the raw body. The placeholders of the payload format are ``{body}``, ``{timestamp}``,
  ``{method}``, ``{url}`` and ``{svix-id}``. VAPI does not document the timestamp's unit:
  ``timestamp_unit`` picks milliseconds (the default, JavaScript's ``Date.now()``) or seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

Mode = Literal["secret", "bearer", "hmac"]
_DEFAULT_HEADER = {"secret": "X-Vapi-Secret", "bearer": "Authorization", "hmac": "x-signature"}


@dataclass(frozen=True)
class ServerAuth:
    """The credential VAPI uses on a server URL; ``secret`` never shows in a repr."""

    mode: Mode
    secret: str = field(repr=False)
    header: str = ""
    bearer_prefix: bool = True
    algorithm: Literal["sha256", "sha512", "sha1"] = "sha256"
    prefix: str = ""
    timestamp_header: str = "x-timestamp"
    include_timestamp: bool = True
    payload_format: str = "{timestamp}.{body}"
    encoding: Literal["hex", "base64"] = "hex"
    secret_is_base64: bool = False
    message_id_header: str = ""
    timestamp_unit: Literal["ms", "s"] = "ms"

    @property
    def header_name(self) -> str:
        """The header that carries the secret, token or signature."""
        return self.header or _DEFAULT_HEADER[self.mode]

    def headers(
        self, body: bytes, *, url: str = "", method: str = "POST", now: float | None = None
    ) -> dict[str, str]:
        """The headers that authenticate a request with this raw ``body``."""
        if self.mode == "secret":
            return {self.header_name: self.secret}
        if self.mode == "bearer":
            return {
                self.header_name: f"Bearer {self.secret}" if self.bearer_prefix else self.secret
            }
        moment = time.time() if now is None else now
        stamp = str(int(moment * 1000)) if self.timestamp_unit == "ms" else str(int(moment))
        message_id = f"msg_{uuid.uuid4().hex}"
        payload = (
            self.payload_format.replace("{timestamp}", stamp if self.include_timestamp else "")
            .replace("{method}", method)
            .replace("{url}", url)
            .replace("{svix-id}", message_id)
        )
        if not self.include_timestamp and self.payload_format == "{timestamp}.{body}":
            payload = "{body}"
        before, _, after = payload.partition("{body}")
        signed = (
            before.encode() + body + after.encode() if "{body}" in payload else payload.encode()
        )
        key = base64.b64decode(self.secret) if self.secret_is_base64 else self.secret.encode()
        digest = hmac.new(key, signed, getattr(hashlib, self.algorithm)).digest()
        encoded = digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
        headers = {self.header_name: self.prefix + encoded}
        if self.include_timestamp:
            headers[self.timestamp_header] = stamp
        if self.message_id_header:
            headers[self.message_id_header] = message_id
        return headers

    # -- conversions -------------------------------------------------------------------------

    @classmethod
    def from_plan(
        cls, plan: Mapping[str, Any], timestamp_unit: Literal["ms", "s"] = "ms"
    ) -> ServerAuth | None:
        """The auth of a custom credential's ``authenticationPlan`` (bearer or hmac; None for
        anything else, OAuth2 included)."""
        kind = plan.get("type")
        if kind == "bearer":
            return cls(
                mode="bearer",
                secret=str(plan.get("token") or ""),
                header=str(plan.get("headerName") or "Authorization"),
                bearer_prefix=plan.get("bearerPrefixEnabled", True) is not False,
            )
        if kind != "hmac":
            return None
        return cls(
            mode="hmac",
            secret=str(plan.get("secretKey") or ""),
            header=str(plan.get("signatureHeader") or "x-signature"),
            algorithm=plan.get("algorithm") or "sha256",
            prefix=str(plan.get("signaturePrefix") or ""),
            timestamp_header=str(plan.get("timestampHeader") or "x-timestamp"),
            include_timestamp=plan.get("includeTimestamp", True) is not False,
            payload_format=str(plan.get("payloadFormat") or "{timestamp}.{body}"),
            encoding=plan.get("signatureEncoding") or "hex",
            secret_is_base64=bool(plan.get("secretIsBase64")),
            message_id_header=str(plan.get("messageIdHeader") or ""),
            timestamp_unit=timestamp_unit,
        )

    @classmethod
    def from_settings(cls, settings: Any, timestamp_unit: Literal["ms", "s"] = "ms") -> ServerAuth:
        """The auth Switchboard expects, from a :class:`VapiSettings` (its ``auth_mode``,
        ``server_secret``, ``auth_header``, ``bearer_prefix`` and ``hmac_*`` fields)."""
        secret: SecretStr = settings.server_secret
        return cls(
            mode=settings.auth_mode,
            secret=secret.get_secret_value(),
            header=settings.auth_header,
            bearer_prefix=settings.bearer_prefix,
            algorithm=settings.hmac_algorithm,
            prefix=settings.hmac_prefix,
            timestamp_header=settings.hmac_timestamp_header,
            payload_format=settings.hmac_payload,
            encoding=settings.hmac_encoding,
            timestamp_unit=timestamp_unit,
        )
