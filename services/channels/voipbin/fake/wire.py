"""VoIPBin's wire formats: Direct Hashes and SIP URIs, Go's JSON, timestamps, ids, Addresses."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime
from typing import Any

from services.channels.voipbin.fake.config import SIP_DOMAIN


def sip_uri(direct_hash: str) -> str:
    """The SIP URI to dial for a Direct Hash: ``sip:<direct_hash>@sip.voipbin.net``.

    The hash already carries its ``direct.`` prefix; an empty one has no URI (regenerate it).
    """
    if not direct_hash.startswith("direct."):
        raise ValueError(f"not a direct hash: {direct_hash!r} (regenerate it when empty)")
    return f"sip:{direct_hash}@{SIP_DOMAIN}"


def new_direct_hash() -> str:
    """A fresh Direct Hash as VoIPBin's ``generateHash()``: ``direct.`` + hex of 6 random bytes."""
    return "direct." + secrets.token_hex(6)


def go_json(value: Any) -> bytes:
    """JSON encoded as Go's ``json.Marshal`` does: compact, UTF-8, HTML characters escaped.

    Receivers must verify the signature over these exact bytes, so the fake sends what
    VoIPBin sends rather than Python's default spacing.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # These characters only ever occur inside JSON strings, so plain replacement is safe.
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode()


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def address_of(target: str) -> dict[str, str]:
    """An Address for a phone number (``tel``) or anything else (``sip``)."""
    kind = "tel" if target.startswith("+") else "sip"
    return {"type": kind, "target": target, "target_name": "", "name": "", "detail": ""}
