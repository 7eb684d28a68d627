"""A call in progress as its control URL sees it: shared by the driver and the control endpoint.

The control endpoint runs on the fake's server thread and the driver wherever it was started
(a test's event loop, or the server's own), so everything here holds a lock; the driver polls
:meth:`LiveCall.ended_reason` and drains :meth:`LiveCall.take_actions` between steps.
"""

from __future__ import annotations

import copy
import threading
from typing import Any


class LiveCall:
    """End requests, queued control actions, and whether a custom-LLM stream is open."""

    def __init__(self, call_id: str, control_auth: bool) -> None:
        self.call_id = call_id
        self.control_auth = control_auth
        self._lock = threading.Lock()
        self._ended: str | None = None
        self._actions: list[dict[str, Any]] = []
        self._streaming = False

    def end(self, reason: str) -> bool:
        """Ask the call to end with ``reason``; False when it had ended already."""
        with self._lock:
            if self._ended is not None:
                return False
            self._ended = reason
            return True

    @property
    def ended_reason(self) -> str | None:
        """Why the call ended (or was asked to), None while it runs."""
        with self._lock:
            return self._ended

    def queue(self, action: dict[str, Any]) -> None:
        """A control action (``say``, ``add-message``) for the driver to carry out."""
        with self._lock:
            self._actions.append(copy.deepcopy(action))

    def take_actions(self) -> list[dict[str, Any]]:
        """The queued actions, oldest first; the queue is emptied."""
        with self._lock:
            actions, self._actions = self._actions, []
            return actions

    @property
    def streaming(self) -> bool:
        """Whether a custom-LLM stream of the call is open right now."""
        with self._lock:
            return self._streaming

    def set_streaming(self, value: bool) -> None:
        with self._lock:
            self._streaming = value
