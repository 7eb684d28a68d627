"""The Messages API's wire details: the message resource, form checks, segments, paging."""

from __future__ import annotations

import secrets
import urllib.parse
from datetime import date, datetime
from email.utils import format_datetime
from typing import Any

from services.channels.sms.fake.config import API_VERSION, MAX_BODY_CHARS

# GSM 03.38 basic character set (without the escape itself) and its extension table, whose
# characters take two septets (escape + char).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def rfc2822(moment: datetime) -> str:
    """A timestamp the way Twilio writes them, e.g. ``Wed, 01 May 2024 12:00:00 GMT``."""
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def count_segments(body: str) -> int:
    """SMS segments for ``body``: GSM-7 160 single / 153 concatenated, else UCS-2 70 / 67.

    GSM-7 extension characters take two septets and UCS-2 characters outside the BMP two
    code units; neither pair is split across segments. An empty body (MMS) is one segment.
    """
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in body):
        units = [2 if c in _GSM7_EXTENSION else 1 for c in body]
        single, multi = 160, 153
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in body]
        single, multi = 70, 67
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for unit in units:
        if used + unit > multi:
            segments, used = segments + 1, 0
        used += unit
    return segments


def parse_day(value: str | None) -> date | None:
    """The date of a ``DateSent`` filter value (``YYYY-MM-DD`` or a longer ISO timestamp)."""
    if value is None or value == "":
        return None
    return date.fromisoformat(value[:10])


def message_resource(
    account_sid: str,
    to: str,
    from_: str | None,
    service_sid: str | None,
    body: str,
    media_urls: list[str],
    created: datetime,
) -> dict[str, Any]:
    """The JSON Twilio answers a successful send with."""
    sid = "SM" + secrets.token_hex(16)
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": rfc2822(created),
        "date_sent": None,
        "date_updated": rfc2822(created),
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": service_sid,
        "num_media": str(len(media_urls)),
        # Twilio reports 0 segments while a messaging service has yet to pick the sender.
        "num_segments": "0" if service_sid else str(count_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service_sid else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": to,
        "uri": f"{uri}.json",
    }


def validate_send(form: dict[str, list[str]]) -> int | None:
    """The Twilio code a malformed send gets, or None if it is well-formed."""

    def given(name: str) -> bool:
        return any(v != "" for v in form.get(name, []))

    if not given("To"):
        return 21604
    if given("From") == given("MessagingServiceSid"):
        return 21603
    if not given("Body") and not given("MediaUrl"):
        return 21602
    if len(first_value(form, "Body") or "") > MAX_BODY_CHARS:
        return 21617
    return None


def first_value(form: dict[str, list[str]], name: str) -> str | None:
    """The first non-blank value of a form field, if any."""
    return next((v for v in form.get(name, []) if v != ""), None)


def page_query(params: list[tuple[str, str]], page_size: int, page: int) -> str:
    """The query string of a list page URI: the filters, then ``PageSize`` and ``Page``."""
    kept = [(k, v) for k, v in params if k not in ("PageSize", "Page", "PageToken")]
    return urllib.parse.urlencode([*kept, ("PageSize", str(page_size)), ("Page", str(page))])
