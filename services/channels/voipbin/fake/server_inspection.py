"""FakeVoipbinServer, part 1: read-only views of the records and resources."""

from __future__ import annotations

from typing import Any

from services.channels.voipbin.fake.config import API_PREFIX
from services.channels.voipbin.fake.state import FakeVoipbinState


class ServerInspection:
    """What VoIPBin was asked and what it holds, as copies (see FakeVoipbinServer)."""

    state: FakeVoipbinState

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """API requests, oldest first; ``path`` matches the path relative to ``/v1.0`` as a
        prefix (``"/speakings"``), ``method`` exactly."""
        return [
            r
            for r in self.state.requests()
            if method in (None, r["method"])
            and (path is None or r["path"].removeprefix(API_PREFIX).startswith(path))
        ]

    def deliveries(self) -> list[dict[str, Any]]:
        """Webhook delivery attempts, oldest first."""
        return self.state.deliveries()

    def speech_log(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """Successful ``say`` (with ``text``), ``flush``, ``stop`` and ``talk``, in order."""
        return self.state.speech_log(call_id)

    def fetches(self) -> list[dict[str, Any]]:
        """Fetches driven through :meth:`fetch` or ``POST /_fake/fetch``, oldest first."""
        return self.state.fetches()

    def customer(self) -> dict[str, Any]:
        """The customer as ``GET /customer`` shows it (secret included)."""
        return self.state.customer(with_secret=True)

    def flow(self, flow_id: str) -> dict[str, Any]:
        """One flow (:class:`ApiError` 404 if unknown)."""
        return self.state.flow(flow_id)

    def flows(self) -> list[dict[str, Any]]:
        """All flows, oldest first."""
        return self.state.flows()

    def call(self, call_id: str) -> dict[str, Any]:
        """One call: also the ``data`` of its ``call_*`` events."""
        return self.state.call(call_id)

    def calls(self) -> list[dict[str, Any]]:
        """All calls, oldest first."""
        return self.state.calls()

    def speaking(self, speaking_id: str) -> dict[str, Any]:
        """One speaking session: also the ``data`` of ``speaking_*`` events."""
        return self.state.speaking(speaking_id)

    def speakings(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """Speaking sessions, oldest first, optionally of one call."""
        return self.state.speakings(call_id)

    def transcribe(self, transcribe_id: str) -> dict[str, Any]:
        """One transcribe: also the ``data`` of ``transcribe_*`` events."""
        return self.state.transcribe(transcribe_id)

    def transcribes(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """Transcribes, oldest first, optionally of one call."""
        return self.state.transcribes(call_id)
