"""VoIPBin facts every side of the voice channel needs: settings, signatures, the REST client.

Wire format: ../shared/providers.md §1, checked against VoIPBin's source. The points that
tutorials get wrong and this module gets right:
- REST calls authenticate with `?accesskey=` in the query string. An accesskey sent as
  `Authorization: Bearer` is parsed as a JWT and refused. The key therefore sits in every
  URL: it is never logged (only paths are), and exceptions carry no URL.
- Errors come in an envelope `{"error": {"status", "reason", "message", ...}}`; 409
  `STATE_INVALID` means the call is not `progressing` (yet, or any more).
- Customer event webhooks are signed `X-VoIPBIN-Signature: sha256=<hex HMAC-SHA256(secret,
  raw body)>`, with no timestamp: receivers dedupe. `fetch` requests are not signed at all.
- A Direct Hash is read from the API (it already starts with `direct.`), never computed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

import httpx2
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator

from services.common.backoff import Backoff
from services.common.retry_after import retry_after_s
from shared.logs import get_logger, redact

log = get_logger("voipbin")

DEV_ACCESS_KEY = "dev-voipbin-accesskey"
DEV_WEBHOOK_SECRET = "dev-voipbin-webhook-secret-00000"  # noqa: S105 - refused in production
DEV_FETCH_TOKEN = "dev-voipbin-fetch-token"  # noqa: S105 - refused in production
SIGNATURE_HEADER = "X-VoIPBIN-Signature"
EVENTS_PATH = "/v1/voipbin/events"
FETCH_PATH = "/v1/voipbin/fetch"
SIP_DOMAIN = "sip.voipbin.net"
STATE_INVALID = "STATE_INVALID"
NOT_FOUND = "RESOURCE_NOT_FOUND"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class VoipbinSettings(BaseModel):
    """VoIPBin account settings, shared by ingress, egress and the setup tool.

    Mixed into each service's settings class; the fields read unprefixed environment
    variables, so one `.env` configures every side. The defaults talk to the fake VoIPBin
    that `make run` starts; production refuses them.
    """

    model_config = ConfigDict(populate_by_name=True)

    voipbin_api_base: str = Field(
        default="https://api.voipbin.net/v1.0",
        validation_alias=_env("VOIPBIN_API_BASE"),
        description="VoIPBin REST base URL, `/v1.0` included (the fake's URL in development).",
    )
    voipbin_access_key: SecretStr = Field(
        default=SecretStr(DEV_ACCESS_KEY),
        validation_alias=_env("VOIPBIN_ACCESS_KEY"),
        description="VoIPBin accesskey, sent as `?accesskey=` (never as a Bearer header).",
    )
    voipbin_webhook_secret: SecretStr = Field(
        default=SecretStr(DEV_WEBHOOK_SECRET),
        validation_alias=_env("VOIPBIN_WEBHOOK_SECRET"),
        description="The customer's `webhook_secret` (`GET /customer`; `switchboard voipbin"
        " setup` prints it): verifies `X-VoIPBIN-Signature` on events.",
    )
    voipbin_allow_unsigned: bool = Field(
        default=False,
        validation_alias=_env("VOIPBIN_ALLOW_UNSIGNED"),
        description="Accept unsigned events (accounts from before 2026-08 do not sign).",
    )
    voipbin_fetch_token: SecretStr = Field(
        default=SecretStr(DEV_FETCH_TOKEN),
        validation_alias=_env("VOIPBIN_FETCH_TOKEN"),
        description="Unguessable path token of the `fetch` endpoint (VoIPBin does not sign"
        " fetch requests). 32+ characters in production.",
    )
    voipbin_language: str = Field(
        default="en-US",
        validation_alias=_env("VOIPBIN_LANGUAGE"),
        description="Language of transcription and speech.",
    )
    voipbin_tts_provider: str = Field(
        default="elevenlabs",
        validation_alias=_env("VOIPBIN_TTS_PROVIDER"),
        description="Speaking API provider (VoIPBin's default is elevenlabs).",
    )
    voipbin_voice_id: str = Field(
        default="",
        validation_alias=_env("VOIPBIN_VOICE_ID"),
        description="Voice of the Speaking API and `talk` (empty: the provider's default).",
    )

    @field_validator("voipbin_api_base")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def voipbin_production_problems(self, *, receives_webhooks: bool) -> list[str]:
        """What a production deployment still has at its development value.

        Everyone calls the API (the accesskey); only ingress receives events and fetches.
        """
        problems = []
        if self.voipbin_access_key.get_secret_value() == DEV_ACCESS_KEY:
            problems.append("VOIPBIN_ACCESS_KEY must be set in production")
        if not receives_webhooks:
            return problems
        secret = self.voipbin_webhook_secret.get_secret_value()
        if secret == DEV_WEBHOOK_SECRET and not self.voipbin_allow_unsigned:
            problems.append("VOIPBIN_WEBHOOK_SECRET must be set in production")
        token = self.voipbin_fetch_token.get_secret_value()
        if token == DEV_FETCH_TOKEN or len(token) < 32:
            problems.append("VOIPBIN_FETCH_TOKEN must be set (32+ characters) in production")
        return problems


def fetch_url(public_base_url: str, token: str) -> str:
    """The `event_url` of the flow's `fetch` action (the token makes it unguessable)."""
    return f"{public_base_url.rstrip('/')}{FETCH_PATH}/{token}"


def sip_uri(direct_hash: str) -> str:
    """The SIP URI to dial a Direct Hash; the hash already carries its `direct.` prefix."""
    return f"sip:{direct_hash}@{SIP_DOMAIN}"


def sign_body(secret: str, body: bytes) -> str:
    """The `X-VoIPBIN-Signature` value for `body`: `sha256=` + lowercase hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of an `X-VoIPBIN-Signature` header against the raw body."""
    if not header:
        return False
    expected = sign_body(secret, body)
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


# -- REST client ----------------------------------------------------------------------------


class VoipbinError(Exception):
    """VoIPBin answered with its error envelope: the request was not carried out."""

    def __init__(
        self, status: int, reason: str, message: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}"[:300])
        self.status = status
        self.reason = reason
        self.message = message[:200]
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """Rate limited or a server error: the same request may succeed later."""
        return self.status == 429 or self.status >= 500

    @property
    def state_invalid(self) -> bool:
        """409 `STATE_INVALID`: the call is not `progressing` (not yet, or no longer)."""
        return self.status == 409 or self.reason == STATE_INVALID

    @property
    def not_found(self) -> bool:
        return self.status == 404


class VoipbinUnreachable(Exception):
    """No usable answer (network error, timeout, a 5xx page without an envelope)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of 429, 5xx and network errors: full-jitter exponential backoff, never shorter
    than `Retry-After` (providers.md 1.1), bounded by attempts and by a total time budget (a
    `Retry-After` beyond the budget ends the retries at once: the caller retries later)."""

    max_attempts: int = 4
    base_s: float = 0.2
    cap_s: float = 5.0
    budget_s: float = 15.0

    def delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        return Backoff(self.base_s, self.cap_s).delay_s(attempt, retry_after_s)


NO_RETRY = RetryPolicy(max_attempts=1)


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
        self._retry = retry or RetryPolicy()
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
        policy = retry or self._retry
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + policy.budget_s
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, path, json, params)
            except (VoipbinError, VoipbinUnreachable) as exc:
                retryable = isinstance(exc, VoipbinUnreachable) or exc.retryable
                retry_after = exc.retry_after_s if isinstance(exc, VoipbinError) else None
                delay = policy.delay_s(attempt, retry_after)
                if (
                    not retryable
                    or attempt >= policy.max_attempts
                    or loop.time() + delay > give_up_at
                ):
                    raise
                log.info("voipbin.retry", method=method, path=path, attempt=attempt, error=str(exc))
                await asyncio.sleep(delay)

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
