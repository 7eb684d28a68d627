"""Twilio's Messages REST API: send one SMS, and look up recent ones (providers.md §2.4).

One pooled `httpx2.AsyncClient` per egress process, so connections are reused. httpx2 (the
maintained httpx fork the openai SDK already depends on) rather than httpx: httpx 0.28's pool
rescans every connection on each request, which made egress CPU-bound with 64 sends in flight
(docs/benchmarks.md, SMS channel). Outcomes are
sorted into three kinds, because each needs different handling by the caller:
- a `SentMessage`: Twilio took the message and gave it a `sid`;
- `TwilioError`: Twilio answered with an error envelope, so the message was *not* taken;
- `TwilioUnreachable`: no answer (timeout, dropped connection, 5xx without an envelope).
  Twilio may or may not have taken it, so the ledger must look before sending again.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2

from services.channels.sms.twilio import TOO_MANY_REQUESTS, TwilioSettings
from services.common.retry_after import retry_after_s


@dataclass(frozen=True)
class SentMessage:
    """A message Twilio accepted."""

    sid: str
    status: str
    to: str
    body: str | None
    created_at: datetime | None


# Twilio quotes numbers as E.164 ("The 'To' number +14155550100 is not..."); error codes are 5
# digits, so 7+ digit runs are numbers.
_PHONE_NUMBER = re.compile(r"\+?\d{7,15}")


def redact_numbers(text: str) -> str:
    """`text` without phone numbers (Twilio's messages quote them; logs and letters must not)."""
    return _PHONE_NUMBER.sub("<number>", text)


class TwilioError(Exception):
    """Twilio refused the request with its error envelope (`code`, `message`).

    `message` has phone numbers redacted: it ends up in logs and dead letters.
    """

    def __init__(self, status: int, code: int | None, message: str, retry_after_s: float | None):
        self.message = redact_numbers(message)
        super().__init__(f"HTTP {status}, Twilio code {code}: {self.message}")
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """Too many requests (429 / 20429) or a server error: Twilio may take it later."""
        return self.status == 429 or self.code == TOO_MANY_REQUESTS or self.status >= 500


class TwilioUnreachable(Exception):
    """No usable answer: whether Twilio took the message is unknown."""


class TwilioClient:
    """Sends SMS through one Twilio account."""

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        timeout_s: float = 10.0,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        self._settings = settings
        self._http = http or httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout_s, connect=5.0),
            # Idle connections are dropped before a server's usual idle timeout (uvicorn 5 s,
            # load balancers longer): a request sent on a connection the server is closing
            # fails with no answer, and its outcome is unknown.
            limits=httpx2.Limits(
                max_connections=100, max_keepalive_connections=50, keepalive_expiry=4.0
            ),
        )
        self._auth = httpx2.BasicAuth(
            settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()
        )
        account = settings.twilio_account_sid
        self._messages_url = (
            f"{settings.twilio_api_base}/2010-04-01/Accounts/{account}/Messages.json"
        )

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def send(self, to: str, body: str, status_callback: str | None) -> SentMessage:
        """POST one message; raises `TwilioError` or `TwilioUnreachable`."""
        form = {"To": to, "Body": body}
        if self._settings.twilio_messaging_service_sid:
            form["MessagingServiceSid"] = self._settings.twilio_messaging_service_sid
        else:
            form["From"] = self._settings.twilio_from_number
        if status_callback:
            form["StatusCallback"] = status_callback
        try:
            response = await self._http.post(self._messages_url, data=form, auth=self._auth)
        except httpx2.HTTPError as exc:
            raise TwilioUnreachable(type(exc).__name__) from None
        return _message(self._check(response))

    async def recent_messages(self, to: str, since: datetime) -> list[SentMessage]:
        """Messages sent to `to` on or after `since`'s date (UTC), newest first."""
        day = (since.astimezone(UTC) - timedelta(days=1)).date().isoformat()
        params = {"To": to, "DateSent>": day, "PageSize": "50"}
        try:
            response = await self._http.get(self._messages_url, params=params, auth=self._auth)
        except httpx2.HTTPError as exc:
            raise TwilioUnreachable(type(exc).__name__) from None
        page = self._check(response)
        return [_message(item) for item in page.get("messages", [])]

    @staticmethod
    def _check(response: httpx2.Response) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_success and isinstance(payload, dict):
            return payload
        if not isinstance(payload, dict) or "code" not in payload:
            # A proxy's 502 page or a truncated body: nothing says the message was refused.
            raise TwilioUnreachable(f"HTTP {response.status_code} without a Twilio error")
        raise TwilioError(
            response.status_code,
            _as_int(payload.get("code")),
            str(payload.get("message", ""))[:200],
            retry_after_s(response.headers),
        )


def _as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _message(item: dict[str, Any]) -> SentMessage:
    created = item.get("date_created")
    return SentMessage(
        sid=str(item["sid"]),
        status=str(item.get("status") or "queued"),
        to=str(item.get("to") or ""),
        body=item.get("body"),
        created_at=email.utils.parsedate_to_datetime(created) if created else None,
    )
