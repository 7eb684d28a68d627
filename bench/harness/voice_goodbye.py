"""Voice benchmark 4: does one caller's goodbye hold up another caller's answer?

Egress ends a call by waiting for its queued speech to play (an estimate: the text said on
the call at `VoicePolicy.chars_per_s`, capped by `EGRESS_VOICE_HANGUP_WAIT_MAX_S`, 10 s by
default) and then hanging up, inside the delivery of that call's final reply. Per round:
call B (on the line throughout) speaks alone; then a new call A is answered and its caller
says "Okay thanks goodbye" (the brain ends the call); as soon as A's goodbye answer is said,
B speaks again. Each B turn is timed as in the turn benchmark (transcript posted → `say`).
If egress held up only A's conversation, both B turns would take the same time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from bench.harness.report import Section
from bench.harness.sms_common import render_grid
from bench.harness.stats import percentile
from bench.harness.voice_calls import Caller, new_call_number

GOODBYE = "Okay thanks goodbye"
HANGUP_TIMEOUT_S = 30.0


@dataclass
class GoodbyeResult:
    """B's turn times alone and right after A's goodbye, and what happened to A."""

    alone_ms: list[float] = field(default_factory=list)
    after_goodbye_ms: list[float] = field(default_factory=list)
    goodbye_said_ms: list[float] = field(default_factory=list)
    hangup_after_s: list[float] = field(default_factory=list)
    """A's goodbye `say` → A's status `hangup` at the fake (egress's `POST /calls/{id}/hangup`)."""
    unanswered: int = 0


async def run(
    caller: Caller, http: aiohttp.ClientSession, rounds: int, first_index: int
) -> GoodbyeResult:
    """`rounds` goodbyes on new calls A next to one call B; model at 0 ms."""
    await caller.stack.set_model_latency(http, 0)
    result = GoodbyeResult()
    b_call, _, b_transcribe = await caller.answer(new_call_number(first_index))
    if b_transcribe is None:
        raise RuntimeError("call B never got its transcribe session")
    b_id = b_call["id"]
    for n in range(rounds):
        text = f"Neighbour {first_index} round {n} of {caller.tag} asks where the parcel is now"
        alone = await caller.turn(b_id, b_transcribe, text)
        await asyncio.sleep(0.3)
        a_call, _, a_transcribe = await caller.answer(new_call_number(first_index + 1 + n))
        if a_transcribe is None:
            raise RuntimeError("call A never got its transcribe session")
        goodbye = await caller.turn(a_call["id"], a_transcribe, GOODBYE)
        text = f"Neighbour {first_index} after goodbye {n} of {caller.tag} asks about the parcel"
        after = await caller.turn(b_id, b_transcribe, text)
        for turn, into in ((alone, result.alone_ms), (after, result.after_goodbye_ms)):
            if turn.answered:
                into.append(turn.e2e_ms)
            else:
                result.unanswered += 1
        if goodbye.t_say is not None:
            result.goodbye_said_ms.append(goodbye.e2e_ms)
            hung = await _hung_up(caller, a_call["id"])
            if hung is not None:
                result.hangup_after_s.append(hung - goodbye.t_say)
        await caller.hang_up(a_call["id"])
    await caller.hang_up(b_id)
    return result


async def _hung_up(caller: Caller, call_id: str) -> float | None:
    """When the fake saw A hung up (polled every 10 ms), or None within the timeout."""
    deadline = time.monotonic() + HANGUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if caller.fake.call(call_id)["status"] == "hangup":
            return time.monotonic()
        await asyncio.sleep(0.01)
    return None


def table(result: GoodbyeResult) -> str:
    header = ("B's turn (transcript in → `say` out)", "n", "p50 ms", "max ms")
    rows = [
        ("nothing else in flight", result.alone_ms),
        ("posted as soon as call A's goodbye was said", result.after_goodbye_ms),
    ]
    return render_grid(
        header,
        [
            (label, str(len(v)), f"{percentile(v, 50):.1f}", f"{max(v, default=0):.1f}")
            for label, v in rows
        ],
    )


def section(result: GoodbyeResult) -> Section:
    out = Section("4. one call's goodbye and another call's turn")
    hangups = ", ".join(f"{s:.2f}" for s in result.hangup_after_s) or "none"
    out.note(
        f"call A: goodbye answer said {len(result.goodbye_said_ms)} times; egress hung A up"
        f" this long after that say (s): {hangups}; B turns without an answer:"
        f" {result.unanswered}"
    )
    return out
