"""One simulated call's state, and VoIPBin's flow engine reduced to what a caller notices.

`answer` moves the call to `progressing`; `fetch` asks ingress for actions and runs them as a
fork; `talk` is shown, `digits_receive` and `sleep` wait, `hangup` ends the call. When the
actions run out the flow is finished and VoIPBin hangs the call up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any, TextIO

import httpx

from services.channels.voipbin.client import VoipbinClient
from services.channels.voipbin.tools.sim_config import CallSimulation
from services.channels.voipbin.tools.sim_support import (
    FakeControls,
    SimulationError,
    action_line,
    call_variables,
    option_of,
    playback_s,
    substitute,
    wait_s,
)

BLOCKING = frozenset({"fetch", "digits_receive", "sleep"})
MIN_FETCH_GAP_S = 0.2
"""A `fetch` answered at once with another `fetch` would spin; VoIPBin takes a moment too."""


class FlowRunner:
    """One call from dial to hangup: its state, what the caller is shown, and its flow."""

    def __init__(
        self,
        sim: CallSimulation,
        controls: FakeControls,
        client: VoipbinClient,
        out: TextIO,
        customer_id: str = "",
    ) -> None:
        self._sim = sim
        self._controls = controls
        self._client = client
        self._out = out
        self._customer_id = customer_id
        self.call: dict[str, Any] = {}
        self.ended = False
        self.problems: list[str] = []
        self.greeted = asyncio.Event()
        self.fetches = 0
        self.last_heard_at: float | None = None
        self.audible_until = 0.0
        self._speech_seen = 0
        self._last_fetch_at = 0.0
        self.digits = ""
        self._pressed = ""
        self._key_pressed = asyncio.Event()

    @property
    def call_id(self) -> str:
        return str(self.call["id"])

    def show(self, line: str) -> None:
        print(line, file=self._out, flush=True)

    def heard(self, line: str) -> None:
        """Show something the agent did; it counts as the answer going on, and its words
        take a while to play."""
        self.show(line)
        self.last_heard_at = now = time.monotonic()
        self.audible_until = max(self.audible_until, now) + playback_s(line)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        self.show(f"[{text}]")

    async def end(self, line: str) -> None:
        """The call is over: show why and send `call_hangup` (once)."""
        if self.ended:
            return
        self.ended = True
        self.show(line)
        await self._controls.move(self.call_id, "hangup")

    async def run_flow(self, actions: list[dict[str, Any]]) -> None:
        """Execute the flow; a `fetch` answer runs as a fork before the rest of the flow."""
        pending = deque(actions)
        try:
            while pending and not self.ended:
                action = pending.popleft()
                option = substitute(option_of(action), call_variables(self.call, self.digits))
                action = action | {"option": option}
                kind = str(action.get("type") or "")
                if kind in BLOCKING and self.fetches:
                    self.greeted.set()
                if kind == "fetch":
                    pending.extendleft(reversed(await self._fetch(action)))
                else:
                    await self._execute(kind, action)
            if not self.ended:
                await self.end("[the flow has no more actions: VoIPBin hangs up the call]")
        except (SimulationError, httpx.HTTPError) as error:
            self.problem(f"the flow stopped: {error}")
            with contextlib.suppress(SimulationError, httpx.HTTPError):
                await self.end("[VoIPBin hangs up the call]")
        finally:
            self.greeted.set()

    async def _execute(self, kind: str, action: dict[str, Any]) -> None:
        if kind == "answer":
            self.call = await self._controls.move(self.call_id, "progressing")
            self.show("[call answered]")
        elif kind == "talk":
            line = action_line(action)
            if line:
                self.heard(line)
        elif kind == "hangup":
            self.heard("[agent hangs up]")
            await self.end("[call ended by the flow]")
        elif kind == "digits_receive":
            await self._receive_digits(wait_s(action))
        elif kind == "sleep":
            await asyncio.sleep(wait_s(action))
        elif kind == "variable_set" and option_of(action).get("key") == "voipbin.call.digits":
            self.digits = str(option_of(action).get("value", ""))
        else:
            self.show(f"[flow action {kind!r}: not simulated, skipped]")

    async def _receive_digits(self, limit_s: float) -> None:
        """Wait for keys (a `/keys` line) up to the action's duration; they end up in
        `${voipbin.call.digits}`, empty when none were pressed."""
        if not self._pressed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._key_pressed.wait(), limit_s)
        self.digits, self._pressed = self._pressed, ""
        self._key_pressed.clear()

    def press(self, keys: str) -> None:
        """The caller presses keys (kept until a `digits_receive` takes them)."""
        self._pressed += keys
        self._key_pressed.set()

    async def _fetch(self, action: dict[str, Any]) -> list[dict[str, Any]]:
        option = option_of(action)
        gap = MIN_FETCH_GAP_S - (time.monotonic() - self._last_fetch_at)
        if gap > 0:
            await asyncio.sleep(gap)
        self._last_fetch_at = time.monotonic()
        result = await self._controls.fetch(
            str(option.get("event_url") or ""),
            str(option.get("event_method") or "POST"),
            activeflow_id=str(self.call.get("activeflow_id") or ""),
            reference_id=self.call_id,
            limit_s=self._sim.fetch_timeout_s,
        )
        self.fetches += 1
        if not result.get("ok"):
            errors = "; ".join(str(e) for e in result.get("errors") or []) or "no answer"
            raise SimulationError(f"fetch failed ({errors}); VoIPBin stops the flow")
        return [a for a in result.get("actions") or [] if isinstance(a, dict)]
