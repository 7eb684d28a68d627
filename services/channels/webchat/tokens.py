"""Signed, expiring chat session tokens: `v1.<session id>.<expiry unix s>.<signature>`.

HMAC-SHA256 over everything before the signature. Stateless, so any ingress instance that
shares the secret can verify a token; nothing about the customer is inside it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_-]{16,64}$")


@dataclass(frozen=True)
class SessionClaims:
    """What a valid token proves."""

    session_id: str
    expires_at: int


def new_session_id() -> str:
    """A fresh, unguessable chat session id."""
    return f"cs_{secrets.token_urlsafe(18)}"


class TokenSigner:
    """Issues and verifies chat session tokens."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, session_id: str, now: float | None = None) -> tuple[str, int]:
        """A token for `session_id` and its expiry (unix seconds)."""
        expires_at = int((time.time() if now is None else now) + self.ttl_s)
        payload = f"v1.{session_id}.{expires_at}"
        return f"{payload}.{self._sign(payload)}", expires_at

    def verify(self, token: str | None, now: float | None = None) -> SessionClaims | None:
        """The token's claims, or None if it is malformed, forged or expired."""
        if not token or len(token) > 512:
            return None
        version = token.partition(".")[0]
        payload, _, signature = token.rpartition(".")
        if version != "v1" or not signature:
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        _, session_id, expiry = [*payload.split("."), "", ""][:3]
        if not _SESSION_ID.match(session_id) or not (expiry.isascii() and expiry.isdigit()):
            return None
        if int(expiry) <= (time.time() if now is None else now):
            return None
        return SessionClaims(session_id=session_id, expires_at=int(expiry))
