"""The VAPI REST client: the calls Switchboard makes, retried, with the key kept out of logs.

Wire format: ../shared/providers.md §3.6. Every request carries `Authorization: Bearer
<private key>` (VAPI_API_KEY) to VAPI_API_BASE. The key is only ever in that header: logs
name the method and path, and exception text never quotes a request, a header or an answer
without masking the key.

Retries (429, 5xx, network errors) follow `services.common.backoff.RetryPolicy`, never
sooner than VAPI's `Retry-After`. A request that may have been carried out (a timeout or a
5xx on `POST`) is not retried: VAPI has no idempotency keys, so a second `POST /call` could
ring the customer twice. A refused connection or a 429 was not carried out and is retried.
"""

from __future__ import annotations

from typing import Any

import httpx2

from services.channels.vapi.settings import VapiSettings
from services.common.backoff import RetryPolicy, call_with_retries
from services.common.retry_after import retry_after_s
from shared.logs import get_logger, redact

log = get_logger("vapi")

DEFAULT_RETRY = RetryPolicy(max_attempts=4, base_s=0.2, cap_s=5.0, budget_s=15.0)
"""429, 5xx and network errors: full jitter, never shorter than `Retry-After`."""
_IDEMPOTENT = frozenset({"GET", "PATCH", "PUT", "DELETE"})


class VapiError(Exception):
    """VAPI answered with an error status: the request was not carried out."""

    def __init__(
        self, status: int, message: str, error: str = "", retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {error}: {message}"[:300])
        self.status = status
        self.message = message[:200]
        self.error = error
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """Rate limited or a server error: the same request may succeed later."""
        return self.status == 429 or self.status >= 500


class VapiUnreachable(Exception):
    """No usable answer: a network error, a timeout, a body that is not JSON.

    `sent` is False when the request surely never reached VAPI (the connection failed).
    """

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class VapiClient:
    """The VAPI REST calls Switchboard makes, over one pooled async client."""

    def __init__(
        self,
        settings: VapiSettings,
        *,
        api_key: str | None = None,
        api_base: str | None = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        key = api_key or (settings.api_key.get_secret_value() if settings.api_key else "")
        if not key:
            raise ValueError("VAPI_API_KEY is not set")
        self._base = (api_base or settings.api_base).rstrip("/")
        self._key = key
        self._retry = retry or DEFAULT_RETRY
        self._http = http or httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout_s, connect=5.0),
            limits=httpx2.Limits(max_connections=20, max_keepalive_connections=10),
        )

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    def mask(self, text: str) -> str:
        """`text` with the key masked, should VAPI (or an error) ever quote it back."""
        return redact(text.replace(self._key, "***"))

    async def request(
        self, method: str, path: str, *, json: Any = None, retry: RetryPolicy | None = None
    ) -> Any:
        """One API call with retries; returns the parsed JSON body (None when empty)."""

        def log_retry(exc: Exception, attempt: int, _: float) -> None:
            log.info("vapi.retry", method=method, path=path, attempt=attempt, error=str(exc))

        return await call_with_retries(
            retry or self._retry,
            lambda: self._once(method, path, json),
            (VapiError, VapiUnreachable),
            retry_after=lambda exc: getattr(exc, "retry_after_s", None),
            retryable=lambda exc: (
                isinstance(exc, VapiError | VapiUnreachable) and self._retryable(method, exc)
            ),
            on_retry=log_retry,
        )

    @staticmethod
    def _retryable(method: str, exc: VapiError | VapiUnreachable) -> bool:
        if isinstance(exc, VapiError):
            return exc.status == 429 or (exc.retryable and method in _IDEMPOTENT)
        return method in _IDEMPOTENT or not exc.sent

    async def _once(self, method: str, path: str, body: Any) -> Any:
        headers = {"Authorization": f"Bearer {self._key}"}
        try:
            response = await self._http.request(
                method, f"{self._base}{path}", json=body, headers=headers
            )
        except httpx2.ConnectError:
            raise VapiUnreachable(f"{method} {path}: cannot connect", sent=False) from None
        except httpx2.HTTPError as exc:
            # Never str(exc): keep request details (and anything quoted) out of the message.
            raise VapiUnreachable(f"{method} {path}: {type(exc).__name__}") from None
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise VapiUnreachable(f"{method} {path}: body is not JSON") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        payload = payload if isinstance(payload, dict) else {}
        message = payload.get("message")
        if isinstance(message, list):
            message = "; ".join(str(part) for part in message)
        raise VapiError(
            response.status_code,
            self.mask(str(message or "no error message")),
            str(payload.get("error") or ""),
            retry_after_s(response.headers),
        )

    # -- assistants -----------------------------------------------------------------------

    async def list_assistants(self, limit: int = 1000) -> list[dict[str, Any]]:
        return list(await self.request("GET", f"/assistant?limit={limit}") or [])

    async def get_assistant(self, assistant_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/assistant/{assistant_id}"))

    async def create_assistant(self, fields: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.request("POST", "/assistant", json=fields))

    async def update_assistant(self, assistant_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.request("PATCH", f"/assistant/{assistant_id}", json=fields))

    # -- credentials ----------------------------------------------------------------------

    async def list_credentials(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/credential") or [])

    async def create_credential(self, fields: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.request("POST", "/credential", json=fields))

    # -- phone numbers --------------------------------------------------------------------

    async def list_phone_numbers(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/phone-number") or [])

    async def get_phone_number(self, phone_number_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/phone-number/{phone_number_id}"))

    async def update_phone_number(
        self, phone_number_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        return dict(await self.request("PATCH", f"/phone-number/{phone_number_id}", json=fields))

    # -- calls ----------------------------------------------------------------------------

    async def create_call(
        self, *, assistant_id: str, phone_number_id: str, number: str
    ) -> dict[str, Any]:
        """An outbound call to `number` (E.164) from a number of the account."""
        body = {
            "assistantId": assistant_id,
            "phoneNumberId": phone_number_id,
            "customer": {"number": number},
        }
        return dict(await self.request("POST", "/call", json=body))

    async def get_call(self, call_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/call/{call_id}"))
