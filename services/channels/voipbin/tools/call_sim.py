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

The simulator's parts: `sim_config` (:class:`CallSimulation`: where, who, how long),
`sim_flow` (VoIPBin's flow engine as the caller notices it), `sim_caller` (the caller's side
of one call), `sim_support` (pure helpers, which tests pin, and the fake's controls). This
module holds the entry points: :func:`simulate_call` takes its URLs, lines and output streams
as arguments, so tests can run a whole conversation in process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

import httpx

from services.channels.voipbin.errors import VoipbinError, VoipbinUnreachable
from services.channels.voipbin.tools.setup import (
    DEFAULT_FLOW_NAME,
    SetupError,
    VoipbinToolSettings,
    ensure_setup,
    error_line,
    tool_client,
)
from services.channels.voipbin.tools.sim_caller import ReadLine, SimulatedCall
from services.channels.voipbin.tools.sim_config import CallSimulation
from services.channels.voipbin.tools.sim_support import FakeControls, SimulationError, unreachable


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
