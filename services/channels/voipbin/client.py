"""The VoIPBin REST client: the calls Switchboard makes, retried, with the key kept out of logs.

Wire format: ../shared/providers.md §1, checked against VoIPBin's source. REST calls
authenticate with `?accesskey=` in the query string. An accesskey sent as `Authorization:
Bearer` is parsed as a JWT and refused. The key therefore sits in every URL: it is never
logged (only paths are), and exceptions carry no URL.

Settings are in `settings.py`, webhook signatures in `signature.py`, errors and the retry
policy in `errors.py`.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2

from services.channels.voipbin.errors import DEFAULT_RETRY, VoipbinError, VoipbinUnreachable
from services.channels.voipbin.settings import VoipbinSettings
from services.common.backoff import NO_RETRY, RetryPolicy, call_with_retries
from services.common.retry_after import retry_after_s
from shared.logs import get_logger, redact

log = get_logger("voipbin")


class _RedactRequestLines(logging.Filter):
    """httpx2 logs every request line at INFO with the full URL, `?accesskey=` included; the
    services keep that logger at WARNING, but a debugging setup may not. Mask it anyway."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg, record.args = redact(record.getMessage()), None
        else:
            record.msg = redact(str(record.msg))
        return True


_REDACT_REQUEST_LINES = _RedactRequestLines()


def _redact_http_logs() -> None:
    for name in ("httpx2", "httpx"):
        logger = logging.getLogger(name)
        if _REDACT_REQUEST_LINES not in logger.filters:
            logger.addFilter(_REDACT_REQUEST_LINES)


class VoipbinClient:
    """The VoIPBin REST calls Switchboard makes, over one pooled async client.

    Every method raises `VoipbinError` (envelope) or `VoipbinUnreachable` once retries are
    spent. Retrying a request VoIPBin may have carried out (a timeout, a 5xx) can repeat it:
    VoIPBin has no idempotency keys, so callers record what succeeded (see the voice egress
    ledger) and accept that rare risk for `say`.
    """

    def __init__(
        self,
        settings: VoipbinSettings,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        self._base = settings.voipbin_api_base
        self._key = settings.voipbin_access_key.get_secret_value()
        self._retry = retry or DEFAULT_RETRY
        _redact_http_logs()
        self._http = http or httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout_s, connect=5.0),
            limits=httpx2.Limits(max_connections=100, max_keepalive_connections=50),
        )

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """One API call with retries; returns the parsed JSON body (None when empty)."""

        def log_retry(exc: Exception, attempt: int, _: float) -> None:
            log.info("voipbin.retry", method=method, path=path, attempt=attempt, error=str(exc))

        return await call_with_retries(
            retry or self._retry,
            lambda: self._once(method, path, json, params),
            (VoipbinError, VoipbinUnreachable),
            retry_after=lambda exc: exc.retry_after_s if isinstance(exc, VoipbinError) else None,
            retryable=lambda exc: (
                isinstance(exc, VoipbinUnreachable)
                or (isinstance(exc, VoipbinError) and exc.retryable)
            ),
            on_retry=log_retry,
        )

    async def _once(self, method: str, path: str, body: Any, params: dict[str, str] | None) -> Any:
        query = {**(params or {}), "accesskey": self._key}
        try:
            response = await self._http.request(
                method, f"{self._base}{path}", json=body, params=query
            )
        except httpx2.HTTPError as exc:
            # Never str(exc): some httpx errors quote the URL, and the URL holds the key.
            raise VoipbinUnreachable(f"{method} {path}: {type(exc).__name__}") from None
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise VoipbinUnreachable(f"{method} {path}: body is not JSON") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            if response.status_code >= 500 or response.status_code == 429:
                raise VoipbinUnreachable(f"{method} {path}: HTTP {response.status_code}")
            raise VoipbinError(response.status_code, "UNKNOWN", "no error envelope")
        raise VoipbinError(
            response.status_code,
            str(error.get("reason") or error.get("status") or "UNKNOWN"),
            self._without_key(str(error.get("message") or "")),
            retry_after_s(response.headers),
        )

    def _without_key(self, text: str) -> str:
        """`text` with the accesskey masked, should VoIPBin ever quote the request back."""
        return redact(text.replace(self._key, "***") if self._key else text)

    # -- customer and flows (setup) -------------------------------------------------------

    async def get_customer(self) -> dict[str, Any]:
        """The self view, `webhook_secret` included."""
        return dict(await self.request("GET", "/customer"))

    async def update_customer(self, **fields: Any) -> dict[str, Any]:
        """`PUT /customer` with the fields given (`webhook_uri`, `webhook_method`, ...)."""
        return dict(await self.request("PUT", "/customer", json=fields))

    async def list_flows(self) -> list[dict[str, Any]]:
        """Every flow, following `next_page_token`."""
        flows: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"page_size": "100", **({"page_token": token} if token else {})}
            page = await self.request("GET", "/flows", params=params)
            items = list(page.get("result") or [])
            flows.extend(items)
            token = str(page.get("next_page_token") or "")
            if not items or not token:
                return flows

    async def create_flow(self, name: str, detail: str, actions: list[dict[str, Any]]) -> Any:
        return await self.request(
            "POST", "/flows", json={"name": name, "detail": detail, "actions": actions}
        )

    async def update_flow(
        self, flow_id: str, name: str, detail: str, actions: list[dict[str, Any]]
    ) -> Any:
        return await self.request(
            "PUT", f"/flows/{flow_id}", json={"name": name, "detail": detail, "actions": actions}
        )

    async def get_flow(self, flow_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/flows/{flow_id}"))

    async def regenerate_direct_hash(self, flow_id: str) -> dict[str, Any]:
        return dict(await self.request("POST", f"/flows/{flow_id}/direct-hash-regenerate"))

    # -- calls ----------------------------------------------------------------------------

    async def create_call(
        self,
        source: dict[str, str],
        destinations: list[dict[str, str]],
        *,
        flow_id: str | None = None,
        actions: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"source": source, "destinations": destinations}
        if flow_id:
            body["flow_id"] = flow_id
        if actions is not None:
            body["actions"] = actions
        return dict(await self.request("POST", "/calls", json=body, retry=NO_RETRY))

    async def get_call(self, call_id: str, *, retry: RetryPolicy | None = None) -> dict[str, Any]:
        return dict(await self.request("GET", f"/calls/{call_id}", retry=retry))

    async def hangup(self, call_id: str) -> Any:
        return await self.request("POST", f"/calls/{call_id}/hangup")

    async def talk(self, call_id: str, text: str, language: str, voice_id: str = "") -> Any:
        body = {"text": text, "language": language, **({"voice_id": voice_id} if voice_id else {})}
        return await self.request("POST", f"/calls/{call_id}/talk", json=body)

    # -- speaking and transcription -------------------------------------------------------

    async def create_speaking(
        self, call_id: str, language: str, provider: str, voice_id: str = ""
    ) -> dict[str, Any]:
        body = {
            "reference_type": "call",
            "reference_id": call_id,
            "language": language,
            "provider": provider,
            "direction": "out",
            **({"voice_id": voice_id} if voice_id else {}),
        }
        return dict(await self.request("POST", "/speakings", json=body))

    async def say(self, speaking_id: str, text: str) -> Any:
        return await self.request("POST", f"/speakings/{speaking_id}/say", json={"text": text})

    async def flush(self, speaking_id: str) -> Any:
        return await self.request("POST", f"/speakings/{speaking_id}/flush")

    async def get_speaking(
        self, speaking_id: str, *, retry: RetryPolicy | None = None
    ) -> dict[str, Any]:
        """One speaking session; `status` is initiating, active or stopped."""
        return dict(await self.request("GET", f"/speakings/{speaking_id}", retry=retry))

    async def stop_speaking(self, speaking_id: str) -> Any:
        return await self.request("POST", f"/speakings/{speaking_id}/stop")

    async def create_transcribe(self, call_id: str, language: str) -> dict[str, Any]:
        body = {
            "reference_type": "call",
            "reference_id": call_id,
            "language": language,
            "direction": "in",
        }
        return dict(await self.request("POST", "/transcribes", json=body))

    async def get_transcribe(
        self, transcribe_id: str, *, retry: RetryPolicy | None = None
    ) -> dict[str, Any]:
        return dict(await self.request("GET", f"/transcribes/{transcribe_id}", retry=retry))

    async def stop_transcribe(self, transcribe_id: str) -> Any:
        return await self.request("POST", f"/transcribes/{transcribe_id}/stop")
