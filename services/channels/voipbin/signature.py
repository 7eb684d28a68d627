"""Signatures of VoIPBin's customer event webhooks.

They are signed `X-VoIPBIN-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`, with no
timestamp: receivers dedupe. `fetch` requests are not signed at all (providers.md §1).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-VoIPBIN-Signature"


def sign_body(secret: str, body: bytes) -> str:
    """The `X-VoIPBIN-Signature` value for `body`: `sha256=` + lowercase hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of an `X-VoIPBIN-Signature` header against the raw body."""
    if not header:
        return False
    expected = sign_body(secret, body)
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())
