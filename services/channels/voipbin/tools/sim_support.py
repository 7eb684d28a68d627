"""The call simulator's parts: what a caller notices, and the fake VoIPBin's controls.

The helpers are pure (tests pin them); :class:`FakeControls` wraps the `/_fake` endpoints
that play the caller and the phone network (no auth: they exist only in the fake).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import httpx

TurnOutcome = Literal["waiting", "answered", "timed_out", "hung_up"]
_VARIABLE = re.compile(r"\$\{(.*?)\}")
KEYS = re.compile(r"^[0-9*#]+$")
SPEECH_CHARS_PER_S = 15.0
"""How fast speech plays, roughly (egress estimates the same when it waits for a goodbye)."""


class SimulationError(Exception):
    """The fake VoIPBin refused a control request (a message for the operator)."""


# -- pure helpers -----------------------------------------------------------------------------


def fake_root(api_base: str) -> str:
    """The fake's server root, where `/_fake` lives: the API base without `/v1.0`."""
    return api_base.rstrip("/").removesuffix("/v1.0")


def option_of(action: dict[str, Any]) -> dict[str, Any]:
    """An action's `option` object (empty when it has none, or a malformed one)."""
    option = action.get("option")
    return option if isinstance(option, dict) else {}


def call_variables(call: dict[str, Any], digits: str = "") -> dict[str, str]:
    """The built-in flow variables of a call (providers.md 1.3) that a simulation knows."""
    source, destination = call.get("source") or {}, call.get("destination") or {}
    return {
        "voipbin.call.id": str(call.get("id") or ""),
        "voipbin.call.direction": str(call.get("direction") or ""),
        "voipbin.call.digits": digits,
        "voipbin.call.source.target": str(source.get("target") or ""),
        "voipbin.call.source.name": str(source.get("target_name") or ""),
        "voipbin.call.destination.target": str(destination.get("target") or ""),
        "voipbin.activeflow.id": str(call.get("activeflow_id") or ""),
        "voipbin.activeflow.flow_id": str(call.get("flow_id") or ""),
        "voipbin.activeflow.reference_id": str(call.get("id") or ""),
        "voipbin.activeflow.reference_type": "call",
    }


def substitute(value: Any, variables: Mapping[str, str]) -> Any:
    """VoIPBin's `${name}` substitution over every string of an option; unknown names
    become "" (flow-manager `variablehandler`)."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: variables.get(match.group(1), ""), value)
    if isinstance(value, dict):
        return {key: substitute(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables) for item in value]
    return value


def action_line(action: Any) -> str | None:
    """What the caller notices of one flow action: the agent's words, or a hangup."""
    if not isinstance(action, dict):
        return None
    option = option_of(action)
    if action.get("type") == "talk":
        text = str(option.get("text") or "").strip()
        return f"agent: {text}" if text else None
    if action.get("type") == "hangup":
        return "[agent hangs up]"
    return None


def action_lines(actions: Iterable[Any]) -> list[str]:
    """The lines a `fetch` answer shows the caller, in order."""
    return [line for action in actions if (line := action_line(action))]


def speech_lines(entries: Iterable[dict[str, Any]]) -> list[str]:
    """`agent: ...` for each `say` / `talk` in the fake's speech log (flush/stop say nothing)."""
    lines = []
    for entry in entries:
        text = str(entry.get("text") or "").strip()
        if entry.get("op") in ("say", "talk") and text:
            lines.append(f"agent: {text}")
    return lines


def playback_s(line: str) -> float:
    """How long the caller listens to one shown line (`agent: ...`; other lines take none)."""
    text = line.removeprefix("agent: ") if line.startswith("agent: ") else ""
    return len(text) / SPEECH_CHARS_PER_S


def wait_s(action: dict[str, Any]) -> float:
    """How long a `digits_receive` (no key is pressed) or `sleep` holds the flow."""
    try:
        duration_ms = float(option_of(action).get("duration") or 0)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, duration_ms / 1000)


def turn_state(
    now: float,
    *,
    started_at: float,
    last_heard_at: float | None,
    quiet_s: float,
    timeout_s: float,
) -> TurnOutcome:
    """An answer is complete once the agent said something, then nothing for `quiet_s`."""
    heard = last_heard_at is not None and last_heard_at >= started_at
    if heard and last_heard_at is not None and now - last_heard_at >= quiet_s:
        return "answered"
    if now - started_at >= timeout_s:
        return "answered" if heard else "timed_out"
    return "waiting"


# -- the fake's controls ----------------------------------------------------------------------


class FakeControls:
    """The fake VoIPBin's `/_fake` endpoints (no auth) that play the caller and the network."""

    def __init__(self, http: httpx.AsyncClient, root: str) -> None:
        self._http = http
        self._root = root

    async def _send(
        self, method: str, path: str, body: Any = None, limit_s: float | None = 15.0
    ) -> Any:
        response = await self._http.request(
            method, f"{self._root}{path}", json=body, timeout=limit_s
        )
        if response.status_code != 200:
            raise SimulationError(
                f"the fake VoIPBin refused {path}: HTTP {response.status_code}"
                f" {response.text[:200]}"
            )
        return response.json()

    async def dial(self, uri: str, source: str) -> dict[str, Any]:
        """A caller dials a Direct Hash SIP URI: an incoming call that runs its flow."""
        body = {"sip_uri": uri, "source": source, "status": "ringing"}
        return dict(await self._send("POST", "/_fake/calls", body))

    async def move(self, call_id: str, status: str) -> dict[str, Any]:
        """Set the call's status and send `call_<status>` to the customer webhook."""
        body = {"status": status, "emit": True}
        return dict(await self._send("POST", f"/_fake/calls/{call_id}/status", body, 120.0))

    async def emit(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send one signed event; the last delivery attempt's record."""
        body = {"type": event_type, "data": data}
        return dict(await self._send("POST", "/_fake/emit", body, 120.0))

    async def fetch(
        self, url: str, method: str, *, activeflow_id: str, reference_id: str, limit_s: float
    ) -> dict[str, Any]:
        """Run a `fetch` action as VoIPBin does (waiting up to `limit_s`); the fake checks
        the answer."""
        body = {
            "url": url,
            "method": method,
            "activeflow_id": activeflow_id,
            "reference_id": reference_id,
            "timeout": limit_s,
        }
        return dict(await self._send("POST", "/_fake/fetch", body, limit_s + 10))

    async def speech(self, call_id: str) -> list[dict[str, Any]]:
        """What was said into the call so far (say/flush/stop/talk), oldest first."""
        return list(await self._send("GET", f"/_fake/speech?call_id={call_id}"))


async def unreachable(http: httpx.AsyncClient, fake: str, ingress: str) -> str | None:
    """Why a simulation cannot start (the fake or ingress is not there), or None."""
    if not await _answers(http, f"{fake}/_fake/config"):
        return (
            f"no fake VoIPBin at {fake} (the simulator drives only the fake):"
            " run `make run`, or set VOIPBIN_API_BASE / FAKE_VOIPBIN_PORT"
        )
    if not await _answers(http, f"{ingress}/healthz"):
        return f"ingress is not reachable at {ingress}: run `make run`, or pass --ingress"
    return None


async def _answers(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url, timeout=3.0)).status_code == 200
    except httpx.HTTPError:
        return False
