"""Live Call Control (providers.md §3.6): speak into a live call, or end it.

Each call's `monitor.controlUrl` takes a bare JSON object (not the spec's `{message: ...}`
wrapper): `{"type": "say", "content": ..., "endCallAfterSpoken": ...}` or
`{"type": "end-call"}`. The URL carries a per-call token, so it is never logged and never
put in an exception; with the assistant's `monitorPlan.controlAuthenticationEnabled` it also
needs `Authorization: Bearer <public key>` (sent whenever `VAPI_PUBLIC_KEY` is set).

429 and 5xx answers and unreachable hosts are retried (capped, jittered backoff, never
sooner than `Retry-After`); other refusals are final.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import httpx2

from services.channels.vapi.settings import VapiSettings
from services.common.backoff import RetryPolicy, call_with_retries
from services.common.retry_after import retry_after_s
from shared.logs import get_logger

log = get_logger("vapi.control")

DEFAULT_RETRY = RetryPolicy(max_attempts=4, base_s=0.2, cap_s=2.0, budget_s=10.0)

_CONTROL_URL = re.compile(r"(https?://[^/\s\"']+)/[^\s\"']*/control\b[^\s\"']*")


class _MaskControlUrls(logging.Filter):
    """httpx2 logs every request line at INFO with its URL, and a control URL is a
    credential. The services keep that logger at WARNING; a debugging setup may not."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/control" in message:
            record.msg, record.args = _CONTROL_URL.sub(r"\1/***", message), None
        return True


_MASK_CONTROL_URLS = _MaskControlUrls()


def _mask_http_logs() -> None:
    for name in ("httpx2", "httpx"):
        logger = logging.getLogger(name)
        if _MASK_CONTROL_URLS not in logger.filters:
            logger.addFilter(_MASK_CONTROL_URLS)


class ControlError(Exception):
    """VAPI refused or did not answer a control message. `status` is 0 when it was not
    reached; `retryable` says whether trying again later may help."""

    def __init__(
        self, action: str, status: int, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(
            f"vapi control {action}: HTTP {status}" if status else f"{action}: unreachable"
        )
        self.action = action
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after

    @property
    def call_gone(self) -> bool:
        """The call is over on VAPI's side (its control URL no longer exists)."""
        return self.status in (404, 410)


class InvalidControlUrl(ValueError):
    """The call's control URL is not an http(s) URL."""


class VapiControl:
    """Posts Live Call Control messages to calls' control URLs, over one pooled client."""

    def __init__(
        self,
        settings: VapiSettings,
        *,
        timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        self._public_key = settings.public_key.get_secret_value() if settings.public_key else ""
        self._retry = retry or DEFAULT_RETRY
        _mask_http_logs()
        self._http = http or httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout_s, connect=3.0),
            limits=httpx2.Limits(max_connections=50, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def say(
        self, control_url: str, text: str, *, end_call_after_spoken: bool = False
    ) -> None:
        """Speak `text` in the call (outside a custom-LLM turn), optionally hanging up after."""
        await self._post(
            control_url,
            {"type": "say", "content": text, "endCallAfterSpoken": end_call_after_spoken},
        )

    async def end_call(self, control_url: str) -> None:
        """End the call now."""
        await self._post(control_url, {"type": "end-call"})

    async def _post(self, control_url: str, message: dict[str, Any]) -> None:
        url = urlsplit(control_url)
        if url.scheme not in ("https", "http") or not url.netloc:
            raise InvalidControlUrl("the call's control URL is not an http(s) URL")
        action = str(message["type"])

        def log_retry(exc: ControlError, attempt: int, _: float) -> None:
            log.info("vapi.control.retry", action=action, status=exc.status, attempt=attempt)

        await call_with_retries(
            self._retry,
            lambda: self._once(control_url, action, message),
            ControlError,
            retry_after=lambda exc: exc.retry_after_s,
            retryable=lambda exc: exc.retryable,
            on_retry=log_retry,
        )

    async def _once(self, control_url: str, action: str, message: dict[str, Any]) -> None:
        headers = {"authorization": f"Bearer {self._public_key}"} if self._public_key else {}
        try:
            response = await self._http.post(control_url, json=message, headers=headers)
        except httpx2.HTTPError:
            # Never str(exc): it may quote the URL, and the URL holds the call's token.
            raise ControlError(action, 0, retryable=True) from None
        if response.is_success:
            return
        status = response.status_code
        retryable = status == 429 or status >= 500
        raise ControlError(
            action, status, retryable=retryable, retry_after=retry_after_s(response.headers)
        )
