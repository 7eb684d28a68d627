"""The phases of the voice benchmark: calls at one model latency and one concurrency.

A phase sets the fake model's latency (`POST /_fake/config`, the same model process
throughout), then runs `calls` whole calls with `concurrency` of them on the line at once
(1: strictly one after another). Inside a call the turns are sequential, as a caller's are:
the next utterance follows the answer to the previous one after a pause drawn from
`think_s`. The services'
counters (`/metrics`) and the CPU of every process are taken around each phase.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.harness import procs
from bench.harness.infra import Infra
from bench.harness.voice_calls import Caller, CallOutcome, FetchRecord, TurnRecord, new_call_number
from bench.harness.voice_stack import VoiceStack


@dataclass(frozen=True)
class Phase:
    """One row group of the tables."""

    model_ms: int
    concurrency: int
    calls: int
    turns_per_call: int

    @property
    def label(self) -> str:
        at_once = "1 call at a time" if self.concurrency == 1 else f"{self.concurrency} calls"
        return f"model {self.model_ms} ms, {at_once}"


@dataclass(frozen=True)
class VoiceConfig:
    """Sizes of one run."""

    latencies_ms: tuple[int, ...] = (0, 200)
    sequential_calls: int = 30
    concurrent_calls: int = 48
    concurrency: int = 8
    turns_per_call: int = 4
    think_s: tuple[float, float] = (0.1, 0.3)
    """Pause after an answer before the hold fetch and the next utterance (uniform)."""
    warmup_calls: int = 4
    goodbye_rounds: int = 3
    """Rounds of benchmark 4 (a goodbye on one call next to another call's turn)."""

    def phases(self) -> list[Phase]:
        found = []
        for latency in self.latencies_ms:
            found.append(Phase(latency, 1, self.sequential_calls, self.turns_per_call))
            found.append(
                Phase(latency, self.concurrency, self.concurrent_calls, self.turns_per_call)
            )
        return found


@dataclass
class PhaseResult:
    """The calls of one phase, the counters it moved and the CPU it used."""

    phase: Phase
    calls: list[CallOutcome] = field(default_factory=list)
    speech: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """The fake's speech log per call, read after the phase."""
    counters: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu: procs.CpuMeter | None = None

    @property
    def turns(self) -> list[TurnRecord]:
        return [turn for call in self.calls for turn in call.turns]

    def fetches(self, kind: str) -> list[FetchRecord]:
        return [f for call in self.calls for f in call.fetches if f.kind == kind]


async def run_phase(
    caller: Caller,
    http: aiohttp.ClientSession,
    infra: Infra,
    phase: Phase,
    first_index: int,
    think_s: tuple[float, float],
) -> PhaseResult:
    """Run the phase's calls; caller numbers start at `first_index` (new callers each)."""
    stack = caller.stack
    await stack.set_model_latency(http, phase.model_ms)
    result = PhaseResult(phase)
    before = await stack.counters(http)
    result.cpu = procs.CpuMeter(stack.pids(infra))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(first_index, first_index + phase.calls):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            number = new_call_number(index)
            result.calls.append(await caller.call(number, index, phase.turns_per_call, think_s))

    started = time.monotonic()
    result.cpu.mark_start()
    await asyncio.gather(*(worker() for _ in range(phase.concurrency)))
    result.cpu.mark_end()
    result.wall_s = time.monotonic() - started
    after = await stack.counters(http)
    result.counters = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k)}
    result.speech = {call.call_id: stack.fake.speech_log(call.call_id) for call in result.calls}
    return result


async def warm_up(caller: Caller, http: aiohttp.ClientSession, calls: int) -> list[CallOutcome]:
    """Unmeasured calls (model 0 ms, two at a time): consumer groups joined, pools warm."""
    await caller.stack.set_model_latency(http, 0)
    indices = iter(range(calls))

    async def worker() -> list[CallOutcome]:
        done = []
        for index in indices:
            number = 900_000 + index  # callers of their own, texts of their own
            done.append(await caller.call(new_call_number(number), number, 2, (0.05, 0.05)))
        return done

    groups = await asyncio.gather(worker(), worker())
    return [call for group in groups for call in group]


def check_stack(stack: VoiceStack) -> None:
    """Fail early, with the log, when a service process died."""
    for child in stack.services.values():
        if child.process is not None and child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
