"""The fake's thread-safe state: config, admission (rate limit, injected failures), records."""

from __future__ import annotations

import collections
import copy
import threading
import time
from datetime import date, datetime
from typing import Any

from services.channels.sms.fake.config import FakeTwilioConfig
from services.channels.sms.fake.errors import Failure, default_code
from services.channels.sms.fake.wire import rfc2822


class FakeTwilioState:
    """Config and records shared by the app and the tests (thread-safe).

    The app runs on uvicorn's event loop thread while tests read from theirs, so every
    access goes through one lock and readers get deep copies.
    """

    def __init__(self, config: FakeTwilioConfig | None = None) -> None:
        self.defaults = (config or FakeTwilioConfig()).model_copy(deep=True)
        self.config = self.defaults.model_copy(deep=True)
        # sid -> {"resource": ..., "status_callback": ..., "created": datetime}, oldest first
        self._messages: dict[str, dict[str, Any]] = {}
        self._attempts: list[dict[str, Any]] = []
        self._callbacks: list[dict[str, Any]] = []
        self._admitted: collections.deque[float] = collections.deque()
        # Bumped by reset(), so callbacks scheduled before it neither send nor record.
        self.generation = 0
        self._lock = threading.Lock()

    def configure(self, **fields: Any) -> FakeTwilioConfig:
        """Update some config fields (validated) and return the new config."""
        with self._lock:
            merged = {**self.config.model_dump(), **fields}
            self.config = FakeTwilioConfig.model_validate(merged)
            return self.config

    def reset(self) -> None:
        """Forget all records, drop pending callbacks, restore the construction-time config."""
        with self._lock:
            self.config = self.defaults.model_copy(deep=True)
            self._messages.clear()
            self._attempts.clear()
            self._callbacks.clear()
            self._admitted.clear()
            self.generation += 1

    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first: the resource plus ``status_callback``."""
        with self._lock:
            return [
                copy.deepcopy(m["resource"]) | {"status_callback": m["status_callback"]}
                for m in self._messages.values()
            ]

    def attempts(self) -> list[dict[str, Any]]:
        """Every authenticated, well-formed send with its outcome, oldest first."""
        with self._lock:
            return copy.deepcopy(self._attempts)

    def callbacks(self) -> list[dict[str, Any]]:
        """Every status callback attempt, oldest first."""
        with self._lock:
            return copy.deepcopy(self._callbacks)

    def take_failure(self, to: str) -> Failure | None:
        """How this send must fail, if it must: rate limit, then ``fail_next``, then
        ``error_for_numbers``."""
        with self._lock:
            config = self.config
            now = time.monotonic()
            while self._admitted and self._admitted[0] <= now - 1.0:
                self._admitted.popleft()
            limit = config.rate_limit_per_second
            if limit is not None and len(self._admitted) >= limit:
                return Failure("rate_limited", 429, 20429, {"Retry-After": "1"})
            self._admitted.append(now)
            if config.fail_next > 0:
                config.fail_next -= 1
                status = config.fail_status
                code = config.fail_code or default_code(status)
                return Failure("injected_failure", status, code)
            if to in config.error_for_numbers:
                return Failure("number_error", 400, config.error_for_numbers[to])
            return None

    def record_attempt(self, attempt: dict[str, Any]) -> None:
        """Remember one send attempt and its outcome."""
        with self._lock:
            self._attempts.append(attempt)

    def accept(
        self, resource: dict[str, Any], status_callback: str | None, created: datetime
    ) -> None:
        """Record an accepted message: from here on Twilio would send it."""
        with self._lock:
            self._messages[resource["sid"]] = {
                "resource": resource,
                "status_callback": status_callback,
                "created": created,
            }

    def get(self, sid: str) -> dict[str, Any] | None:
        """A copy of the message resource with this sid, if any."""
        with self._lock:
            stored = self._messages.get(sid)
            return copy.deepcopy(stored["resource"]) if stored else None

    def select(
        self,
        to: str | None,
        from_: str | None,
        on: date | None,
        since: date | None,
        until: date | None,
    ) -> list[dict[str, Any]]:
        """Copies of the message resources matching the filters, newest first."""
        with self._lock:
            stored = list(self._messages.values())
        found = []
        for message in reversed(stored):
            resource, day = message["resource"], message["created"].date()
            if (
                (to is not None and resource["to"] != to)
                or (from_ is not None and resource["from"] != from_)
                or (on is not None and day != on)
                or (since is not None and day < since)
                or (until is not None and day > until)
            ):
                continue
            found.append(resource)
        with self._lock:
            return copy.deepcopy(found)

    def advance(
        self, generation: int, sid: str, status: str, error_code: int | None, at: datetime
    ) -> bool:
        """Move a stored message to ``status``; False if a reset dropped it meanwhile."""
        with self._lock:
            stored = self._messages.get(sid)
            if generation != self.generation or stored is None:
                return False
            resource = stored["resource"]
            resource["status"] = status
            resource["date_updated"] = rfc2822(at)
            if status == "sent":
                resource["date_sent"] = rfc2822(at)
            if status != "sent" and error_code is not None:
                resource["error_code"] = error_code
            return True

    def record_callback(self, generation: int, callback: dict[str, Any]) -> None:
        """Remember one callback attempt, unless a reset happened since it was scheduled."""
        with self._lock:
            if generation == self.generation:
                self._callbacks.append(callback)
