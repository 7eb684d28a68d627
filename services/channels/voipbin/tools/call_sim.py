"""`switchboard simulate call`: phone the running system as a VoIPBin caller, in text.

It drives the fake VoIPBin that `make run` starts (its `/_fake` controls sit at the API base
without `/v1.0`) and plays VoIPBin's part as providers.md §1 describes it:

1. `setup` (idempotent) with the ingress URL as the public URL: the customer webhook goes to
   ingress `/v1/voipbin/events`, the flow's `fetch` to ingress `/v1/voipbin/fetch/<token>`;
2. the caller dials the flow's Direct Hash SIP URI and the flow runs as VoIPBin runs it:
   `answer` moves the call to `progressing` and sends `call_progressing`; `fetch` asks ingress
   for actions and runs them as a fork (`talk` is printed, `digits_receive` and `sleep` wait,
   `hangup` ends the call). When the actions run out the flow is finished and VoIPBin hangs
   the call up (call-manager `actionExecute`: IDFinish -> hangup); so does the simulator;
3. once egress has opened a transcription for the call, each line is one caller turn: a
   signed `transcript_created` (direction `in`), then whatever egress says (Speaking API
   `say`, `talk`, or a `fetch` answer) is printed until the answer looks complete or the
   agent hangs up (then the simulator sends `call_hangup`, as VoIPBin would);
   A line `/keys 12#` presses keys instead: the running `digits_receive` ends with them and
   `${voipbin.call.digits}` carries them into the next `fetch` URL (options go through
   VoIPBin's `${...}` substitution before each action runs);
4. at the end the caller hangs up (`call_hangup`) if the call is still up.

The formatting helpers (`voipbin_sim_support`) are pure, and :func:`simulate_call` takes its
URLs, lines and output streams as arguments, so tests can run a whole conversation in process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from services.channels.voipbin.client import VoipbinClient, VoipbinError, VoipbinUnreachable
from services.channels.voipbin.fake import DEV_CUSTOMER_ID, transcript_data
from services.channels.voipbin.tools.setup import (
    DEFAULT_FLOW_NAME,
    TOOL_RETRY,
    SetupError,
    VoipbinToolSettings,
    ensure_setup,
    error_line,
    tool_client,
)
from services.channels.voipbin.tools.sim_support import (
    KEYS,
    FakeControls,
    SimulationError,
    TurnOutcome,
    action_line,
    call_variables,
    fake_root,
    option_of,
    playback_s,
    speech_lines,
    substitute,
    turn_state,
    unreachable,
    wait_s,
)

ReadLine = Callable[[str], Awaitable[str | None]]

BLOCKING = frozenset({"fetch", "digits_receive", "sleep"})
MIN_FETCH_GAP_S = 0.2
"""A `fetch` answered at once with another `fetch` would spin; VoIPBin takes a moment too."""


@dataclass(frozen=True)
class CallSimulation:
    """Where the system and the fake are, who calls, and how long to wait."""

    ingress_url: str
    api_base: str
    access_key: str = field(repr=False)
    fetch_token: str = field(repr=False)
    caller: str = "+15551234567"
    flow_name: str = DEFAULT_FLOW_NAME
    turn_timeout_s: float = 20.0
    quiet_s: float = 1.5
    poll_s: float = 0.25
    session_timeout_s: float = 10.0
    fetch_timeout_s: float = 600.0
    listen_max_s: float = 12.0
    """Longest the caller keeps listening after the last line (egress waits up to 10 s for a
    goodbye to be heard before it hangs up)."""

    @property
    def fake_root(self) -> str:
        return fake_root(self.api_base)


# -- one call ---------------------------------------------------------------------------------


class SimulatedCall:
    """One call from dial to hangup: runs the flow, sends the caller's turns, shows the agent."""

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

    # -- VoIPBin's flow engine, reduced to what a caller notices ------------------------------

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

    # -- the caller's side --------------------------------------------------------------------

    async def drain_speech(self) -> None:
        """Show what egress said into the call since the last look."""
        entries = await self._controls.speech(self.call_id)
        new, self._speech_seen = entries[self._speech_seen :], len(entries)
        for line in speech_lines(new):
            self.heard(line)

    async def agent_hung_up(self) -> bool:
        """Whether egress hung up through the API; then show it and send `call_hangup`, as
        VoIPBin would."""
        call = await self._client.get_call(self.call_id, retry=TOOL_RETRY)
        if call.get("status") != "hangup":
            return False
        await self.drain_speech()  # words said just before the hangup
        await self.end("[agent hung up]")
        return True

    async def wait_transcribe(self) -> str | None:
        """The transcription egress opened for the call (bounded wait), or None."""
        deadline = time.monotonic() + self._sim.session_timeout_s
        while time.monotonic() < deadline and not self.ended:
            params = {"reference_type": "call", "reference_id": self.call_id}
            page = await self._client.request("GET", "/transcribes", params=params)
            for transcribe in page.get("result") or []:
                if transcribe.get("status") != "done":
                    return str(transcribe["id"])
            await asyncio.sleep(self._sim.poll_s)
        return None

    async def wait_answer(self) -> TurnOutcome:
        """Show the agent's answer until it looks complete, times out, or the agent hangs up."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(self._sim.poll_s)
            await self.drain_speech()
            if self.ended:
                return "hung_up"
            if await self.agent_hung_up():
                return "hung_up"
            state = turn_state(
                time.monotonic(),
                started_at=started,
                last_heard_at=self.last_heard_at,
                quiet_s=self._sim.quiet_s,
                timeout_s=self._sim.turn_timeout_s,
            )
            if state != "waiting":
                return state

    async def turn(self, transcribe_id: str, text: str) -> TurnOutcome:
        """The caller says `text` (VoIPBin's transcript event) or presses `/keys`, then the
        agent's answer."""
        if text.startswith("/keys"):
            keys = text.removeprefix("/keys").strip()
            if not KEYS.match(keys):
                self.show("[/keys takes 0-9, * and #, e.g. /keys 1]")
                return "answered"
            self.press(keys)
            return await self._answered()
        customer_id = self._customer_id or DEV_CUSTOMER_ID
        data = transcript_data(transcribe_id, text, direction="in", customer_id=customer_id)
        delivery = await self._controls.emit("transcript_created", data)
        status = delivery.get("status_code")
        if status != 200:
            hint = " (is VOIPBIN_WEBHOOK_SECRET the fake's secret?)" if status == 401 else ""
            self.problem(f"ingress answered the transcript with {status or 'no answer'}{hint}")
        return await self._answered()

    async def _answered(self) -> TurnOutcome:
        outcome = await self.wait_answer()
        if outcome == "timed_out":
            self.problem(f"no answer within {self._sim.turn_timeout_s:.0f} s")
        return outcome

    async def converse(
        self, uri: str, flow: list[dict[str, Any]], lines: list[str] | None, read_line: ReadLine
    ) -> int:
        """Dial, be greeted, say each line, hang up; 0 when every step got its answer."""
        self.call = await self._controls.dial(uri, self._sim.caller)
        self.show(f"[{self._sim.caller} dials {uri}: call {self.call_id}]")
        engine = asyncio.create_task(self.run_flow(flow))
        try:
            await self._greeting()
            transcribe_id = None if self.ended else await self.wait_transcribe()
            if transcribe_id is None and not self.ended:
                self.problem(
                    f"no transcription opened for the call within {self._sim.session_timeout_s:.0f}"
                    " s (egress opens one on call_progressing): see the egress log"
                )
            queue = deque(lines) if lines is not None else None
            while transcribe_id and not self.ended:
                text = await self._next_line(queue, read_line)
                if text is None:
                    break
                if text.strip():
                    await self.turn(transcribe_id, text.strip())
            await self.listen_to_the_end()
            if not self.ended:
                await self.end("[you hang up]")
        finally:
            engine.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await engine
        return 1 if self.problems else 0

    async def listen_to_the_end(self) -> None:
        """Before hanging up, hear the last answer out (its estimated playback, then a quiet
        moment): an agent that says goodbye hangs up once it has been heard."""
        give_up_at = time.monotonic() + self._sim.listen_max_s
        while not self.ended and time.monotonic() < give_up_at:
            if time.monotonic() >= self.audible_until + self._sim.quiet_s:
                return
            await asyncio.sleep(self._sim.poll_s)
            await self.drain_speech()
            await self.agent_hung_up()

    async def _greeting(self) -> None:
        try:
            await asyncio.wait_for(self.greeted.wait(), self._sim.turn_timeout_s)
        except TimeoutError:
            self.problem(f"no greeting within {self._sim.turn_timeout_s:.0f} s")
        await self.drain_speech()

    async def _next_line(self, queue: deque[str] | None, read_line: ReadLine) -> str | None:
        if queue is None:
            return await read_line("you> ")
        if not queue:
            return None
        text = queue.popleft()
        self.show(f"you> {text}")
        return text


# -- entry points -----------------------------------------------------------------------------


async def read_stdin(prompt: str) -> str | None:
    """One line typed by the caller; None at end of input (Ctrl-D)."""
    try:
        return await asyncio.to_thread(input, prompt)
    except EOFError:
        return None


async def simulate_call(
    sim: CallSimulation,
    lines: list[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    read_line: ReadLine = read_stdin,
) -> int:
    """Run one simulated call; `lines` are the caller's turns (None: read them from stdin).

    Returns the exit code: 0 when the call went through and every turn was answered.
    """
    out, err = out or sys.stdout, err or sys.stderr
    async with httpx.AsyncClient(timeout=15.0) as http:
        problem = await unreachable(http, sim.fake_root, sim.ingress_url)
        if problem:
            print(f"error: {problem}", file=err)
            return 1
        client = tool_client(sim.api_base, sim.access_key)
        try:
            setup = await ensure_setup(
                client,
                public_url=sim.ingress_url,
                fetch_token=sim.fetch_token,
                flow_name=sim.flow_name,
            )
            flow = await client.get_flow(setup.flow_id)
            controls = FakeControls(http, sim.fake_root)
            call = SimulatedCall(sim, controls, client, out, setup.customer_id)
            actions = [a for a in flow.get("actions") or [] if isinstance(a, dict)]
            return await call.converse(setup.uri, actions, lines, read_line)
        except (VoipbinError, VoipbinUnreachable, SetupError, SimulationError) as error:
            print(error_line(error, api_base=sim.api_base, access_key=sim.access_key), file=err)
            return 1
        finally:
            await client.aclose()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `switchboard simulate call`."""
    parser.add_argument(
        "lines", nargs="*", help="what the caller says, one turn each (none: type them)"
    )
    parser.add_argument(
        "--from", dest="sender", default="+15551234567", help="caller number (E.164)"
    )
    parser.add_argument(
        "--ingress",
        "--ingress-url",
        dest="ingress_url",
        default=None,
        help="where ingress listens (default :INGRESS_PORT)",
    )
    parser.add_argument("--flow-name", default=DEFAULT_FLOW_NAME, help="name of the flow")
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="longest wait for each answer (s)"
    )
    parser.add_argument("--quiet", type=float, default=1.5, help="silence that ends an answer (s)")


def run(args: argparse.Namespace) -> int:
    """Entry point of `switchboard simulate call`; returns the exit code."""
    settings = VoipbinToolSettings()
    sim = CallSimulation(
        ingress_url=(args.ingress_url or f"http://127.0.0.1:{settings.ingress_port}").rstrip("/"),
        api_base=settings.api_base,
        access_key=settings.voipbin_access_key.get_secret_value(),
        fetch_token=settings.voipbin_fetch_token.get_secret_value(),
        caller=args.sender,
        flow_name=args.flow_name,
        turn_timeout_s=args.timeout,
        quiet_s=args.quiet,
    )
    try:
        return asyncio.run(simulate_call(sim, args.lines or None))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
