"""State: config switches, request admission (rate limit, injected failures), records."""

from __future__ import annotations

import copy
import time
from typing import Any, NamedTuple

from services.channels.voipbin.fake.config import FakeVoipbinConfig
from services.channels.voipbin.fake.errors import ApiError
from services.channels.voipbin.fake.state.store import StateStore

_INJECTED = {
    429: ("RATE_LIMIT_EXCEEDED", "Too many requests."),
    500: ("INTERNAL", "An internal error occurred."),
}


class Refusal(NamedTuple):
    """An API request turned away before its endpoint ran."""

    error: ApiError
    headers: dict[str, str] | None


class RecordsMixin(StateStore):
    """Config, reset, admission and the request/delivery/fetch/speech records."""

    def configure(self, **fields: Any) -> FakeVoipbinConfig:
        """Update some config fields (validated) and return the new config."""
        with self._lock:
            merged = {**self.config.model_dump(), **fields}
            self.config = FakeVoipbinConfig.model_validate(merged)
            return self.config

    def reset(self) -> None:
        """Forget every resource and record; restore the construction-time config."""
        with self._lock:
            self.config = self.defaults.model_copy(deep=True)
            self._clear()

    def admit(self) -> Refusal | None:
        """Whether an authenticated request is refused: rate limit, then ``fail_next``."""
        with self._lock:
            config = self.config
            retry = (
                {"Retry-After": str(config.retry_after)} if config.retry_after is not None else None
            )
            now = time.monotonic()
            while self._admitted and self._admitted[0] <= now - 1.0:
                self._admitted.popleft()
            limit = config.rate_limit_per_second
            if limit is not None and len(self._admitted) >= limit:
                return Refusal(ApiError(429, *_INJECTED[429]), retry)
            self._admitted.append(now)
            if config.fail_next > 0:
                config.fail_next -= 1
                status = config.fail_status
                reason, message = _INJECTED.get(
                    status, ("UNAVAILABLE", "The service is temporarily unavailable.")
                )
                return Refusal(ApiError(status, reason, message), retry if status == 429 else None)
            return None

    def _append(self, records: list[dict[str, Any]], record: dict[str, Any]) -> None:
        with self._lock:
            records.append(copy.deepcopy(record))

    def record_request(self, record: dict[str, Any]) -> None:
        """Remember one API request (no secrets in it)."""
        self._append(self._requests, record)

    def record_delivery(self, record: dict[str, Any]) -> None:
        """Remember one webhook delivery attempt."""
        self._append(self._deliveries, record)

    def record_fetch(self, record: dict[str, Any]) -> None:
        """Remember one ``fetch`` driven against a server."""
        self._append(self._fetches, record)

    def _records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(records)

    def requests(self) -> list[dict[str, Any]]:
        """Every API request, oldest first."""
        return self._records(self._requests)

    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery attempt, oldest first."""
        return self._records(self._deliveries)

    def fetches(self) -> list[dict[str, Any]]:
        """Every ``fetch`` driven through the fake, oldest first."""
        return self._records(self._fetches)

    def speech_log(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """Successful say/flush/stop/talk operations, oldest first, optionally for one call."""
        with self._lock:
            return [copy.deepcopy(s) for s in self._speech if call_id in (None, s["call_id"])]
