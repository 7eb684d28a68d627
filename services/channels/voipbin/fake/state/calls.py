"""State: calls (outbound with groupcalls, or made by tests), status moves, ``talk``."""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any, Literal

from services.channels.voipbin.fake.config import CALL_STATUSES, NIL_UUID
from services.channels.voipbin.fake.errors import ApiError, bad_request
from services.channels.voipbin.fake.state.store import StateStore

_GROUPCALL_DESTINATIONS = frozenset({"tel", "extension"})


class CallsMixin(StateStore):
    """Calls and groupcalls; a hangup ends the call's speakings and transcribes."""

    def _new_call(
        self,
        *,
        direction: Literal["incoming", "outgoing"],
        source: dict[str, str],
        destination: dict[str, str],
        flow_id: str | None,
        status: str,
    ) -> dict[str, Any]:
        if status not in CALL_STATUSES:  # refuse before storing: no half-made call is left
            raise bad_request(f"unknown call status {status!r}")
        now = self._stamp()
        call: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "customer_id": self.config.customer_id,
            "owner_type": "",
            "owner_id": NIL_UUID,
            "flow_id": flow_id or str(uuid.uuid4()),  # inline actions run as a temporary flow
            "activeflow_id": str(uuid.uuid4()),
            "type": "flow",
            "master_call_id": NIL_UUID,
            "chained_call_ids": [],
            "recording_id": NIL_UUID,
            "recording_ids": [],
            "groupcall_id": NIL_UUID,
            "source": source,
            "destination": destination,
            "status": "dialing",
            "action": {"id": NIL_UUID, "next_id": NIL_UUID, "type": ""},
            "metadata": {},
            "direction": direction,
            "mute_direction": "",
            "hangup_by": "",
            "hangup_reason": "",
            "tm_progressing": None,
            "tm_ringing": None,
            "tm_hangup": None,
            "tm_create": now,
            "tm_update": now,
            "tm_delete": None,
        }
        self._calls[call["id"]] = call
        self._move(call, status, "remote", "normal")
        return call

    def _move(self, call: dict[str, Any], status: str, hangup_by: str, reason: str) -> None:
        """Set a call's status with its timestamps; a hangup ends its sessions."""
        if status not in CALL_STATUSES:
            raise bad_request(f"unknown call status {status!r}")
        if call["status"] == "hangup":
            if status == "hangup":
                return  # hanging up twice changes nothing
            raise ApiError(409, "STATE_INVALID", "The call is already hung up.")
        now = self._stamp()
        call.update(status=status, tm_update=now)
        if status in ("ringing", "progressing") and call[f"tm_{status}"] is None:
            call[f"tm_{status}"] = now
        if status == "hangup" and call["tm_hangup"] is None:
            call.update(tm_hangup=now, hangup_by=hangup_by, hangup_reason=reason)
            self._end_sessions(call["id"], now)

    def _end_sessions(self, call_id: str, now: str) -> None:
        for speaking in self._speakings.values():
            if speaking["reference_id"] == call_id and speaking["status"] != "stopped":
                speaking.update(status="stopped", tm_update=now)
        for transcribe in self._transcribes.values():
            if transcribe["reference_id"] == call_id and transcribe["status"] != "done":
                transcribe.update(status="done", tm_update=now)

    def create_outbound_calls(
        self,
        source: dict[str, str],
        destinations: list[dict[str, str]],
        flow_id: str | None,
    ) -> dict[str, list[dict[str, Any]]]:
        """``POST /calls``: one call per destination; tel/extension ones via a groupcall."""
        with self._lock:
            if flow_id is not None:
                self._flow(flow_id)
            result: dict[str, list[dict[str, Any]]] = {"calls": [], "groupcalls": []}
            status = self.config.outbound_call_status
            for destination in destinations:
                call = self._new_call(
                    direction="outgoing",
                    source=source,
                    destination=destination,
                    flow_id=flow_id,
                    status=status,
                )
                if destination["type"] in _GROUPCALL_DESTINATIONS:
                    result["groupcalls"].append(self._groupcall(call))
                else:
                    result["calls"].append(call)
            return copy.deepcopy(result)

    def _groupcall(self, call: dict[str, Any]) -> dict[str, Any]:
        now = self._stamp()
        groupcall = {
            "id": str(uuid.uuid4()),
            "customer_id": call["customer_id"],
            "status": "progressing",
            "source": call["source"],
            "destinations": [call["destination"]],
            "ring_method": "ring_all",
            "answer_method": "hangup_others",
            "call_ids": [call["id"]],
            "call_count": 1,
            "tm_create": now,
            "tm_update": now,
            "tm_delete": None,
        }
        call["groupcall_id"] = groupcall["id"]
        self._groupcalls[groupcall["id"]] = groupcall
        return groupcall

    def add_call(
        self,
        *,
        source: dict[str, str],
        destination: dict[str, str],
        flow_id: str | None = None,
        direction: Literal["incoming", "outgoing"] = "incoming",
        status: str = "progressing",
    ) -> dict[str, Any]:
        """Create a call as if it had reached VoIPBin (test control)."""
        with self._lock:
            return copy.deepcopy(
                self._new_call(
                    direction=direction,
                    source=source,
                    destination=destination,
                    flow_id=flow_id,
                    status=status,
                )
            )

    def call(self, call_id: str) -> dict[str, Any]:
        """A copy of one call (also the ``data`` of its ``call_*`` events)."""
        with self._lock:
            return copy.deepcopy(self._call(call_id))

    def calls(self) -> list[dict[str, Any]]:
        """Copies of all calls, oldest first."""
        with self._lock:
            return copy.deepcopy(list(self._calls.values()))

    def set_call_status(
        self, call_id: str, status: str, *, hangup_by: str = "remote", hangup_reason: str = "normal"
    ) -> dict[str, Any]:
        """Move a call to ``status`` (test control; ``hangup`` ends its sessions)."""
        with self._lock:
            call = self._call(call_id)
            self._move(call, status, hangup_by, hangup_reason)
            return copy.deepcopy(call)

    def hangup(self, call_id: str) -> dict[str, Any]:
        """``POST /calls/{id}/hangup``: a local hangup; a call already hung up stays as is."""
        return self.set_call_status(call_id, "hangup", hangup_by="local")

    def talk(self, call_id: str, option: dict[str, str]) -> None:
        """``POST /calls/{id}/talk``: needs a progressing call."""
        with self._lock:
            self._require_progressing(self._call(call_id))
            entry = {
                "op": "talk",
                "call_id": call_id,
                "speaking_id": None,
                "at": time.monotonic(),
            } | option
            self._speech.append(entry)
