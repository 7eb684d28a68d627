"""Webhook signatures of the Template channel:
`X-Template-Signature: sha256=<hex>`, an HMAC-SHA256 of the raw body.
Replace with the provider's own scheme."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Template-Signature"


def sign_body(secret: str, body: bytes) -> str:
    """The signature header value of `body` (the provider's side; fakes and tests)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of the header against the raw body; never valid without a secret."""
    if not secret or not header:
        return False
    return hmac.compare_digest(sign_body(secret, body).encode(), header.strip().encode())
