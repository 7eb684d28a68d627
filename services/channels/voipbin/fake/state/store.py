"""The state's storage: lock, resources and records, the ``tm_*`` clock, lookups by id."""

from __future__ import annotations

import collections
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from services.channels.voipbin.fake.config import NIL_UUID, FakeVoipbinConfig
from services.channels.voipbin.fake.errors import ApiError, not_found
from services.channels.voipbin.fake.wire import timestamp


class StateStore:
    """The data every part of :class:`FakeVoipbinState` shares.

    Lookups by id (``_flow``, ``_call``, ...) raise 404 :class:`ApiError`; callers hold the
    lock.
    """

    def __init__(self, config: FakeVoipbinConfig | None = None) -> None:
        self.defaults = (config or FakeVoipbinConfig()).model_copy(deep=True)
        self.config = self.defaults.model_copy(deep=True)
        self._lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        self._last_stamp = datetime.now(UTC) - timedelta(seconds=1)
        self._customer = self._new_customer()
        self._flows: dict[str, dict[str, Any]] = {}
        self._direct: dict[str, str] = {}  # direct_hash -> flow id
        self._calls: dict[str, dict[str, Any]] = {}
        self._groupcalls: dict[str, dict[str, Any]] = {}
        self._speakings: dict[str, dict[str, Any]] = {}
        self._transcribes: dict[str, dict[str, Any]] = {}
        self._streaming_ids: dict[str, str] = {}  # transcribe id -> its streaming id
        self._requests: list[dict[str, Any]] = []
        self._deliveries: list[dict[str, Any]] = []
        self._speech: list[dict[str, Any]] = []
        self._fetches: list[dict[str, Any]] = []
        self._admitted: collections.deque[float] = collections.deque()

    def _stamp(self) -> str:
        """A strictly increasing ``tm_*`` timestamp, so ``page_token`` paging never skips."""
        now = max(datetime.now(UTC), self._last_stamp + timedelta(microseconds=1))
        self._last_stamp = now
        return timestamp(now)

    def _new_customer(self) -> dict[str, Any]:
        now = self._stamp()
        return {
            "id": self.config.customer_id,
            "name": "Fake customer",
            "detail": "",
            "email": "dev@example.com",
            "phone_number": "",
            "address": "",
            "webhook_method": "",
            "webhook_uri": "",
            "billing_account_id": NIL_UUID,
            "metadata": {},
            "email_verified": True,
            "status": "active",
            "identity_verification_status": "",
            "tm_deletion_scheduled": None,
            "tm_create": now,
            "tm_update": now,
            "tm_delete": None,
        }

    def _flow(self, flow_id: str) -> dict[str, Any]:
        found = self._flows.get(flow_id)
        if found is None:
            raise not_found("flow", flow_id)
        return found

    def _call(self, call_id: str) -> dict[str, Any]:
        found = self._calls.get(call_id)
        if found is None:
            raise not_found("call", call_id)
        return found

    def _require_progressing(self, call: dict[str, Any]) -> None:
        if call["status"] != "progressing":
            message = f"The call is {call['status']}; this needs a progressing call."
            raise ApiError(409, "STATE_INVALID", message)

    def _speaking(self, speaking_id: str) -> dict[str, Any]:
        found = self._speakings.get(speaking_id)
        if found is None:
            raise not_found("speaking", speaking_id)
        return found

    def _transcribe(self, transcribe_id: str) -> dict[str, Any]:
        found = self._transcribes.get(transcribe_id)
        if found is None:
            raise not_found("transcribe", transcribe_id)
        return found
