"""The phases of the VAPI benchmark: whole calls at one concurrency and one pacing.

A phase runs `calls` whole calls with `concurrency` of them on the line at once (1: strictly
one after another; the first calls' starts spread over one call's length), the fake model at
0 ms. Inside a call the turns are sequential, as a caller's are: each custom-LLM request
follows the greeting or the previous answer after a pause drawn from `think_s`. The
services' counters (`/metrics`) and the CPU of every process are taken around each phase.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from bench.harness import procs
from bench.harness.infra import Infra
from bench.harness.vapi_calls import (
    GreetingRecord,
    LlmRecord,
    VapiCaller,
    VapiCallOutcome,
    new_call_number,
)
from bench.harness.vapi_stack import VapiStack


@dataclass(frozen=True)
class Phase:
    """One row group of the tables."""

    name: str
    concurrency: int
    calls: int
    turns_per_call: int
    think_s: tuple[float, float]
    """Pause before each request (uniform): the greeting or the last answer playing and the
    caller speaking."""
    speech_lead_s: float | None = None
    """Post VAPI's `speech-update` (user, started) this long before each request."""

    @property
    def label(self) -> str:
        at_once = "1 call" if self.concurrency == 1 else f"{self.concurrency} calls"
        low, high = self.think_s
        updates = ", speech-updates" if self.speech_lead_s is not None else ""
        return f"{at_once}, {self.name} (pause {low:g}-{high:g} s{updates})"

    @property
    def stagger_s(self) -> float:
        """Delay between the first calls of the workers: their starts spread over one call's
        length, as independent calls arrive, instead of a burst of `concurrency` at once."""
        if self.concurrency == 1:
            return 0.0
        return self.turns_per_call * sum(self.think_s) / 2 / self.concurrency


@dataclass(frozen=True)
class VapiConfig:
    """Sizes of one run."""

    sequential_calls: int = 30
    concurrent_calls: int = 60
    concurrency: int = 20
    turns_per_call: int = 6
    quick_pause_s: tuple[float, float] = (0.1, 0.3)
    paced_pause_s: tuple[float, float] = (1.0, 3.0)
    speech_lead_s: float = 0.5
    """The paced phase posts `speech-update` this long before each request."""
    warmup_calls: int = 4

    def phases(self) -> list[Phase]:
        turns, many = self.turns_per_call, self.concurrency
        return [
            Phase("one caller", 1, self.sequential_calls, turns, self.quick_pause_s),
            Phase(
                "paced",
                many,
                self.concurrent_calls,
                turns,
                self.paced_pause_s,
                self.speech_lead_s,
            ),
            Phase("back to back", many, self.concurrent_calls, turns, self.quick_pause_s),
        ]


@dataclass
class PhaseResult:
    """The calls of one phase, the counters it moved and the CPU it used."""

    phase: Phase
    calls: list[VapiCallOutcome] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu: procs.CpuMeter | None = None
    kafka_gc: str = ""
    """Kafka's JVM GC pauses over the phase (`jstat`), when it could tell."""

    @property
    def turns(self) -> list[LlmRecord]:
        return [turn for call in self.calls for turn in call.turns]

    @property
    def greetings(self) -> list[GreetingRecord]:
        return [call.greeting for call in self.calls]


async def run_phase(
    caller: VapiCaller, http: aiohttp.ClientSession, infra: Infra, phase: Phase, first_index: int
) -> PhaseResult:
    """Run the phase's calls; caller numbers start at `first_index` (new callers each)."""
    stack = caller.stack
    await stack.set_model_latency(http, 0)
    result = PhaseResult(phase)
    before = await stack.counters(http)
    result.cpu = procs.CpuMeter(stack.pids(infra))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(first_index, first_index + phase.calls):
        queue.put_nowait(index)

    async def worker(rank: int) -> None:
        await asyncio.sleep(rank * phase.stagger_s)
        while not queue.empty():
            index = queue.get_nowait()
            number = new_call_number(index)
            outcome = await caller.call(
                number, index, phase.turns_per_call, phase.think_s, phase.speech_lead_s
            )
            result.calls.append(outcome)

    kafka_pid = procs.listening_pid(infra.kafka_port)
    gc_before = procs.jvm_gc(kafka_pid)
    started = time.monotonic()
    result.cpu.mark_start()
    await asyncio.gather(*(worker(rank) for rank in range(phase.concurrency)))
    result.cpu.mark_end()
    result.kafka_gc = procs.describe_gc(gc_before, procs.jvm_gc(kafka_pid))
    result.wall_s = time.monotonic() - started
    # The last calls' end-of-call-reports are still being handled; let the counters settle.
    await asyncio.sleep(0.5)
    after = await stack.counters(http)
    result.counters = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k)}
    return result


async def warm_up(caller: VapiCaller, http: aiohttp.ClientSession, calls: int) -> PhaseResult:
    """Unmeasured calls (two at a time, 2 turns each): consumer groups joined, pools warm."""
    phase = Phase("warm-up", 2, calls, 2, (0.05, 0.05))
    await caller.stack.set_model_latency(http, 0)
    result = PhaseResult(phase)
    indices = iter(range(900_000, 900_000 + calls))  # callers of their own

    async def worker() -> None:
        for index in indices:
            outcome = await caller.call(new_call_number(index), index, 2, phase.think_s)
            result.calls.append(outcome)

    await asyncio.gather(worker(), worker())
    return result


def check_stack(stack: VapiStack) -> None:
    """Fail early, with the log, when a service process died."""
    for child in stack.services.values():
        if child.process is not None and child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
