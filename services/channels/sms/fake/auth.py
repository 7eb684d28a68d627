"""HTTP Basic auth as Twilio checks it: the configured account SID and auth token."""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import Request
from fastapi.responses import JSONResponse

from services.channels.sms.fake.config import FakeTwilioConfig
from services.channels.sms.fake.errors import twilio_error


def unauthorized() -> JSONResponse:
    return twilio_error(401, 20003, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})


def authorized(request: Request, path_account_sid: str, config: FakeTwilioConfig) -> bool:
    """Whether the request carries the configured Basic credentials for this account path."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    sid = config.account_sid.encode()
    token = config.auth_token.get_secret_value().encode()
    # Constant-time comparisons, all evaluated, so timing does not reveal which part is wrong.
    checks = [
        bool(sep),
        hmac.compare_digest(user, sid),
        hmac.compare_digest(password, token),
        hmac.compare_digest(path_account_sid.encode(), sid),
    ]
    return all(checks)
