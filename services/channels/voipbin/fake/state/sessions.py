"""State: speakings (TTS sessions) and transcribes (STT sessions) on progressing calls."""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any, Literal

from services.channels.voipbin.fake.errors import ApiError
from services.channels.voipbin.fake.state.store import StateStore


class SessionsMixin(StateStore):
    """Speaking sessions (say, flush, stop) and transcribes (create, stop)."""

    def create_speaking(self, call_id: str, option: dict[str, str]) -> dict[str, Any]:
        """``POST /speakings``: answered ``initiating``; stored ``active`` right after."""
        with self._lock:
            self._require_progressing(self._call(call_id))
            now = self._stamp()
            speaking: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "customer_id": self.config.customer_id,
                "reference_type": "call",
                "reference_id": call_id,
                **option,
                "status": "initiating",
                "tm_create": now,
                "tm_update": now,
                "tm_delete": None,
            }
            answer = copy.deepcopy(speaking)
            speaking["status"] = "active"
            self._speakings[speaking["id"]] = speaking
            return answer

    def speak(
        self, speaking_id: str, op: Literal["say", "flush", "stop"], text: str = ""
    ) -> dict[str, Any]:
        """Say, flush or stop a speaking session; the successful ones are logged in order."""
        with self._lock:
            speaking = self._speaking(speaking_id)
            call_id = speaking["reference_id"]
            if op != "stop":
                if speaking["status"] == "stopped":
                    raise ApiError(409, "STATE_INVALID", "The speaking session is stopped.")
                self._require_progressing(self._call(call_id))
            else:
                speaking["status"] = "stopped"
            speaking["tm_update"] = self._stamp()
            entry: dict[str, Any] = {
                "op": op,
                "call_id": call_id,
                "speaking_id": speaking_id,
                "at": time.monotonic(),
            }
            self._speech.append(entry | ({"text": text} if op == "say" else {}))
            return copy.deepcopy(speaking)

    def speaking(self, speaking_id: str) -> dict[str, Any]:
        """A copy of one speaking session (also the ``data`` of ``speaking_*`` events)."""
        with self._lock:
            return copy.deepcopy(self._speaking(speaking_id))

    def speakings(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """Copies of the speaking sessions, oldest first, optionally of one call."""
        with self._lock:
            found = [s for s in self._speakings.values() if call_id in (None, s["reference_id"])]
            return copy.deepcopy(found)

    def create_transcribe(self, call_id: str, option: dict[str, Any]) -> dict[str, Any]:
        """``POST /transcribes`` on a progressing call: status ``progressing``."""
        with self._lock:
            call = self._call(call_id)
            self._require_progressing(call)
            now = self._stamp()
            transcribe: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "customer_id": self.config.customer_id,
                "activeflow_id": call["activeflow_id"],
                "reference_type": "call",
                "reference_id": call_id,
                "status": "progressing",
                **option,
                "tm_create": now,
                "tm_update": now,
                "tm_delete": None,
            }
            self._transcribes[transcribe["id"]] = transcribe
            self._streaming_ids[transcribe["id"]] = str(uuid.uuid4())
            return copy.deepcopy(transcribe)

    def stop_transcribe(self, transcribe_id: str) -> dict[str, Any]:
        """``POST /transcribes/{id}/stop``: status ``done`` (stopping twice is harmless)."""
        with self._lock:
            transcribe = self._transcribe(transcribe_id)
            transcribe.update(status="done", tm_update=self._stamp())
            return copy.deepcopy(transcribe)

    def transcribe(self, transcribe_id: str) -> dict[str, Any]:
        """A copy of one transcribe (also the ``data`` of ``transcribe_*`` events)."""
        with self._lock:
            return copy.deepcopy(self._transcribe(transcribe_id))

    def transcribes(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """Copies of the transcribes, oldest first, optionally of one call."""
        with self._lock:
            found = [t for t in self._transcribes.values() if call_id in (None, t["reference_id"])]
            return copy.deepcopy(found)

    def streaming_id(self, transcribe_id: str) -> str | None:
        """The streaming id a transcribe's speech events carry (None if unknown)."""
        with self._lock:
            return self._streaming_ids.get(transcribe_id)
