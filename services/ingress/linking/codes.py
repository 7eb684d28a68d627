"""One-time link codes: generation, keyed digests, constant-time checks, the SMS text.

Only a keyed digest of a code is stored. A plain hash of a 6-digit code is reversed by trying
all million codes, so the digest is an HMAC under a key derived from the ingress secret, and
it binds the link id and the phone so a digest cannot be replayed on another link.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid

import phonenumbers

CODE_DIGITS = 6
_CODE = re.compile(r"^[0-9]{6}$")
_CODE_SEPARATORS = re.compile(r"[\s-]")
# Fixed namespace of link reply ids; changing it would break reply dedupe across deploys.
_LINK_NAMESPACE = uuid.UUID("0b6f4f0e-2d55-5c1a-8f3e-6a1d9c7b2e41")
_KEY_LABEL = b"switchboard/link-code/v1"
# Numbers that bill the sender (SMS pumping fraud) never get a code.
_REFUSED_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.PREMIUM_RATE, phonenumbers.PhoneNumberType.SHARED_COST}
)


def new_link_id() -> str:
    """A fresh, unguessable id of one link attempt."""
    return f"lnk_{secrets.token_hex(16)}"


def new_code() -> str:
    """A uniformly random one-time code of `CODE_DIGITS` digits, leading zeros kept."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def derive_code_key(secret: bytes) -> bytes:
    """The HMAC key of code digests, separated from the token-signing use of `secret`."""
    return hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()


def code_digest(key: bytes, link_id: str, phone: str, code: str) -> str:
    """What is stored instead of the code."""
    message = f"{link_id}\n{phone}\n{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def code_matches(key: bytes, link_id: str, phone: str, code: str, stored_digest: str) -> bool:
    """Whether `code` is the one behind `stored_digest`, compared in constant time."""
    return hmac.compare_digest(code_digest(key, link_id, phone, code), stored_digest)


def clean_code(raw: str) -> str | None:
    """The code as typed, without spaces or dashes; None unless exactly six ASCII digits."""
    code = _CODE_SEPARATORS.sub("", raw)
    return code if _CODE.match(code) else None


def can_receive_codes(e164: str) -> bool:
    """False for premium-rate and shared-cost numbers: texting them costs us, not them."""
    number = phonenumbers.parse(e164, None)
    return phonenumbers.number_type(number) not in _REFUSED_TYPES


def link_message_id(link_id: str) -> str:
    """The message id of a link attempt: the code SMS answers it, the linked event carries it."""
    return f"link:{link_id}"


def code_reply_id(link_id: str) -> str:
    """Deterministic `reply_id` of the code SMS: a republished code is delivered once."""
    return uuid.uuid5(_LINK_NAMESPACE, link_message_id(link_id)).hex


def describe_ttl(ttl_s: int) -> str:
    """`10 minutes`, `1 minute`, `45 seconds`: how long a code lives, for people."""
    if ttl_s < 60:
        return f"{ttl_s} second{'s' if ttl_s != 1 else ''}"
    minutes = ttl_s // 60  # rounded down: never promise more time than the code has
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def code_text(code: str, ttl_s: int) -> str:
    """The SMS carrying the code: plain GSM-7 text, one segment."""
    return (
        f"Your verification code is {code}. It expires in {describe_ttl(ttl_s)}."
        " Don't share it with anyone."
    )
