"""The fake's thread-safe state: config, admission, resources, live calls and records.

The app runs on uvicorn's loop thread while tests (and call drivers) call in from theirs, so
every access holds one lock and callers get deep copies. Secrets are stored once, here, and
never returned by the API or kept in a record: responses and records carry them masked.
"""

from __future__ import annotations

import collections
import copy
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

from services.channels.vapi.fake.config import FakeVapiConfig
from services.channels.vapi.fake.errors import ApiError, not_found
from services.channels.vapi.fake.live import LiveCall

SECRET_FIELDS = frozenset({"apiKey", "token", "secretKey", "clientSecret", "secret"})


def now_iso() -> str:
    """A timestamp as VAPI writes them: ISO 8601 in UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def masked(value: Any) -> Any:
    """``value`` with every secret field (at any depth) replaced by ``***``."""
    if isinstance(value, dict):
        return {k: "***" if k in SECRET_FIELDS and v else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


class Refusal(NamedTuple):
    """An API request turned away before its endpoint ran."""

    error: ApiError
    headers: dict[str, str] | None


class FakeVapiState:
    """Config, VAPI resources, live calls and records shared by the app, drivers and tests."""

    def __init__(self, config: FakeVapiConfig | None = None) -> None:
        self.defaults = (config or FakeVapiConfig()).model_copy(deep=True)
        self.config = self.defaults.model_copy(deep=True)
        self.base_url = ""
        self._lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        self._assistants: dict[str, dict[str, Any]] = {}
        self._credentials: dict[str, dict[str, Any]] = {}  # with secrets: never returned as is
        self._phone_numbers: dict[str, dict[str, Any]] = {}
        self._calls: dict[str, dict[str, Any]] = {}
        self._live: dict[str, LiveCall] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self._requests: list[dict[str, Any]] = []
        self._control: list[dict[str, Any]] = []
        self._admitted: collections.deque[float] = collections.deque()
        for seed in self.config.phone_numbers:
            stamp = now_iso()
            self._phone_numbers[seed.id] = {
                "id": seed.id,
                "orgId": self.config.org_id,
                "provider": "vapi",
                "number": seed.number,
                "name": seed.name,
                "status": "active",
                "assistantId": None,
                "server": None,
                "createdAt": stamp,
                "updatedAt": stamp,
            }

    # -- config, reset, admission -------------------------------------------------------------

    def configure(self, **fields: Any) -> FakeVapiConfig:
        """Update some config fields (validated) and return the new config."""
        with self._lock:
            merged = {**self.config.model_dump(), **fields}
            self.config = FakeVapiConfig.model_validate(merged)
            return self.config

    def reset(self) -> None:
        """Forget every resource and record; restore the construction-time config."""
        with self._lock:
            for live in self._live.values():
                live.end("manually-canceled")
            self.config = self.defaults.model_copy(deep=True)
            self._clear()

    @property
    def control_base(self) -> str:
        """Where others reach the fake: control URLs start with it."""
        return (self.config.public_url or self.base_url).rstrip("/")

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
                return Refusal(ApiError(429, "Too Many Requests"), retry)
            self._admitted.append(now)
            if config.fail_next > 0:
                config.fail_next -= 1
                status = config.fail_status
                message = {429: "Too Many Requests", 500: "Internal server error"}.get(
                    status, "Service temporarily unavailable"
                )
                return Refusal(ApiError(status, message), retry if status == 429 else None)
            return None

    # -- generic resources --------------------------------------------------------------------

    def _table(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            "assistant": self._assistants,
            "credential": self._credentials,
            "phone-number": self._phone_numbers,
            "call": self._calls,
        }[kind]

    def create(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Store a new resource of ``kind`` and return it (masked)."""
        with self._lock:
            stamp = now_iso()
            item = {"id": str(uuid.uuid4()), "orgId": self.config.org_id, **copy.deepcopy(fields)}
            item |= {"createdAt": stamp, "updatedAt": stamp}
            self._table(kind)[item["id"]] = item
            return dict(masked(copy.deepcopy(item)))

    def get(self, kind: str, ident: str, *, secrets: bool = False) -> dict[str, Any]:
        """One resource (404 :class:`ApiError` when unknown); masked unless ``secrets``."""
        with self._lock:
            item = self._table(kind).get(ident)
            if item is None:
                raise not_found(kind.replace("-", " ").capitalize())
            found: dict[str, Any] = copy.deepcopy(item)
            return found if secrets else dict(masked(found))

    def find(self, kind: str, ident: str) -> dict[str, Any] | None:
        """One resource with its secrets, or None."""
        with self._lock:
            item = self._table(kind).get(ident)
            return copy.deepcopy(item) if item is not None else None

    def update(self, kind: str, ident: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Replace the top-level ``fields`` of a resource (PATCH) and return it (masked)."""
        with self._lock:
            item = self._table(kind).get(ident)
            if item is None:
                raise not_found(kind.replace("-", " ").capitalize())
            item.update(copy.deepcopy(fields))
            item["updatedAt"] = now_iso()
            return dict(masked(copy.deepcopy(item)))

    def delete(self, kind: str, ident: str) -> dict[str, Any]:
        """Remove a resource and return it (masked)."""
        with self._lock:
            found = self.get(kind, ident)
            del self._table(kind)[ident]
            return found

    def items(self, kind: str, *, secrets: bool = False) -> list[dict[str, Any]]:
        """Every resource of ``kind``, newest first (as VAPI lists), masked unless ``secrets``."""
        with self._lock:
            items = [copy.deepcopy(item) for item in reversed(self._table(kind).values())]
            return items if secrets else [masked(item) for item in items]

    # -- live calls ---------------------------------------------------------------------------

    def start_live(self, call: dict[str, Any], control_auth: bool) -> LiveCall:
        """Register a call that a driver is running (control URLs reach it)."""
        with self._lock:
            self._calls[call["id"]] = copy.deepcopy(call)
            live = LiveCall(call["id"], control_auth or self.config.control_auth_required)
            self._live[call["id"]] = live
            return live

    def live(self, call_id: str) -> LiveCall | None:
        with self._lock:
            return self._live.get(call_id)

    def set_call(self, call_id: str, **fields: Any) -> None:
        """Update the stored call object (status, endedReason ...)."""
        with self._lock:
            if call_id in self._calls:
                self._calls[call_id].update(copy.deepcopy(fields))
                self._calls[call_id]["updatedAt"] = now_iso()

    def store_result(self, call_id: str, result: dict[str, Any]) -> None:
        with self._lock:
            self._results[call_id] = copy.deepcopy(result)

    def result(self, call_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._results.get(call_id)
            return copy.deepcopy(found) if found is not None else None

    # -- records ------------------------------------------------------------------------------

    def record_request(self, record: dict[str, Any]) -> None:
        """Remember one API request (its body masked)."""
        with self._lock:
            self._requests.append(masked(copy.deepcopy(record)))

    def record_control(self, record: dict[str, Any]) -> None:
        """Remember one request to a control URL."""
        with self._lock:
            self._control.append(copy.deepcopy(record))

    def requests(self) -> list[dict[str, Any]]:
        """Every API request, oldest first."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def control_log(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """Every control URL request, oldest first, optionally of one call."""
        with self._lock:
            return [copy.deepcopy(c) for c in self._control if call_id in (None, c["call_id"])]
