"""Voice channel benchmark: turn overhead and `fetch` latency through the whole stack.

    python bench/voice_bench.py            # full run (~3 minutes on 2 cores)
    python bench/voice_bench.py --quick    # smoke run (~1 minute)

ONE ingress, ONE brain and ONE egress process (`switchboard ...`) on real Kafka and Redis;
the brain's OpenAI engine talks to the fake model in its own process
(`bench.harness.timed_fake`, which records its own time per request); the fake VoIPBin
runs inside the bench process, so the time of each `say` it records is on the bench's clock.

1. Voice turn overhead: per turn, t0 just before the bench POSTs a signed
   `transcript_created` event to ingress, t1 the fake VoIPBin's time of the first `say` for
   that call after t0; overhead = (t1 - t0) - the fake model's own time for that request.
   Calls one at a time, then 8 on the line at once; the model at 0 ms and at 200 ms.
2. `fetch` latency with the brain up: the call's first fetch (held until the brain's
   greeting comes back through egress and ingress's inbox) and later "hold" fetches (a
   round without digits, answered at once), timed on the client; fallbacks counted.
3. Where a turn's time goes: the turns of 1 split into five stages with the ops topic, the
   fake model's records and the voice reply topic's record timestamps.
4. One call's goodbye next to another call's turn: does egress's wait before hanging up
   one call hold up the others?

Prints the tables and the evidence: every transcript answered once by its own `say`, no
duplicate or stray speech, fallback greetings, the services' counters, CPU per process.
Kafka and Redis come from KAFKA_BOOTSTRAP_SERVERS / REDIS_URL, or the project's own are
started on bench ports (bench/harness/infra.py) and stopped at the end. The machine is
shared and has 2 cores: compare ratios within one run, not absolutes across runs. What is
measured and why: docs/benchmarks.md, section "Voice channel".
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/voice_bench.py` (what `make bench` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.harness import infra as infra_mod
from bench.harness import procs, voice_goodbye, voice_stack
from bench.harness.entry import run_and_print, stack_bench_args
from bench.harness.kafka_io import read_records
from bench.harness.report import render_details
from bench.harness.stack_run import on_bench_infra
from bench.harness.voice_calls import Caller, new_tag
from bench.harness.voice_phases import PhaseResult, VoiceConfig, check_stack, run_phase, warm_up
from bench.harness.voice_report import (
    PhaseNumbers,
    fetch_table,
    first_parts,
    model_by_user,
    ops_by_message,
    section,
    stage_table,
    turn_table,
    write_rows,
)
from shared.contracts import Channel

FULL = VoiceConfig()
QUICK = VoiceConfig(
    sequential_calls=6, concurrent_calls=16, turns_per_call=3, warmup_calls=2, goodbye_rounds=1
)

NOTE = """\
What was measured:
- turn: t0 = the bench's monotonic clock just before it POSTs a signed `transcript_created`
  (direction in) to ingress; t1 = the fake VoIPBin's `at` of the first `say` for that call
  after t0 (same process, same clock). "model" is the fake model's own time for that
  request (first byte in → last byte out, recorded inside its process), so the brain's
  model client (openai SDK, HTTP) counts as overhead; the evidence also gives the overhead
  with the brain's own `llm_end.duration_ms` as model time. Turns within a call are
  sequential: the next utterance follows the answer after a random 0.1-0.3 s pause and a
  hold fetch. "calls at once" is how many calls were on the line together.
- fetch: client-side, send → last byte of the answer, on a kept-alive connection.
  "greeting" is a call's first fetch (GREETING in SYNC mode, held until the answer arrives
  through egress and ingress's inbox; it includes the greeting's model call); "greeting -
  model" subtracts the brain's `llm_end.duration_ms` of that greeting; "hold" is a later
  round without digits (the loop's continuation, no Kafka, no brain).
- stages: ingress = POST → ingress `published` ops event (signature, dedupe, call lookup,
  Kafka ack); to_brain = → brain `llm_start` (Kafka hop, scheduler, lock, memory);
  to_model = → the model request arrives (prompt, openai SDK, HTTP); model; brain_out =
  model done → the answer's record on the voice reply topic (its CreateTime: stream end,
  sentence cut, lock extend); egress = → `say` at the fake (Kafka ack and hop, egress's
  poll, ledger, the say request). Wall-clock ops times are mapped onto the monotonic clock
  with each turn's t0, read on both clocks together; the stages add up to the turn."""


@dataclass
class Measured:
    """What the stack run produced, for the report."""

    results: list[PhaseResult]
    goodbye: voice_goodbye.GoodbyeResult
    warmup: str
    ops: list[Any] = field(default_factory=list)
    replies: list[Any] = field(default_factory=list)
    model_requests: list[dict[str, Any]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return stack_bench_args(__doc__, argv)


async def run(args: argparse.Namespace) -> str:
    """Provision Kafka/Redis, measure, tear down what was started, build the report."""
    config = QUICK if args.quick else FULL
    done = await on_bench_infra(
        "voice", args.keep_infra, lambda infra, log_dir: _measure(infra, config, log_dir)
    )
    return _report(args, done.facts, done.measured, done.log_dir, done.started_at, done.finished_at)


async def _measure(infra: infra_mod.Infra, config: VoiceConfig, log_dir: Path) -> Measured:
    """Start the stack in a fresh namespace, drive it, read the topics, clean up."""
    namespace = infra_mod.new_namespace("voice")
    topics = await infra_mod.create_topics(infra, namespace)
    print("starting the fake VoIPBin, the fake model, ingress, brain, egress ...", flush=True)
    stack = voice_stack.start(infra, namespace, log_dir)
    try:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            measured = await _drive(Caller(stack, http, new_tag()), http, infra, config)
            measured.model_requests = await stack.model_requests(http)
    finally:
        stack.stop()
    try:
        bootstrap = infra.kafka_bootstrap_servers
        measured.ops = await read_records(bootstrap, topics.ops)
        measured.replies = await read_records(bootstrap, topics.replies(Channel.VOICE))
    finally:
        await infra_mod.drop_namespace(infra, namespace)
    measured.logs = [procs.describe_log(child) for child in stack.services.values()]
    return measured


async def _drive(
    caller: Caller, http: aiohttp.ClientSession, infra: infra_mod.Infra, config: VoiceConfig
) -> Measured:
    """Warm-up, the phases of benchmarks 1-3, then benchmark 4."""
    began = time.monotonic()
    warm = await warm_up(caller, http, config.warmup_calls)
    warmup = (
        f"warm-up: {len(warm)} calls (model 0 ms, 2 at once, 2 turns each) in"
        f" {time.monotonic() - began:.1f} s, {sum(c.opened for c in warm)} opened,"
        f" {sum(t.answered for c in warm for t in c.turns)} turns answered"
    )
    if not any(c.opened for c in warm):
        raise RuntimeError(f"no warm-up call opened its sessions:\n{warmup}")
    results: list[PhaseResult] = []
    first_index = 0
    for phase in config.phases():
        check_stack(caller.stack)
        print(f"  {phase.label}: {phase.calls} calls ...", flush=True)
        began = time.monotonic()
        results.append(await run_phase(caller, http, infra, phase, first_index, config.think_s))
        print(f"    done in {time.monotonic() - began:.0f} s", flush=True)
        first_index += phase.calls
    check_stack(caller.stack)
    print(f"  a goodbye next to another call: {config.goodbye_rounds} rounds ...", flush=True)
    goodbye = await voice_goodbye.run(caller, http, config.goodbye_rounds, 800_000)
    return Measured(results, goodbye, warmup)


def _report(
    args: argparse.Namespace,
    facts: list[str],
    measured: Measured,
    log_dir: Path,
    started_at: datetime,
    finished_at: datetime,
) -> str:
    mode = "quick run" if args.quick else "full run"
    header = [
        f"Switchboard voice channel benchmark ({mode})",
        f"run: {started_at:%Y-%m-%d %H:%M:%S} → {finished_at:%H:%M:%S} UTC",
        *facts,
    ]
    ops = ops_by_message(measured.ops)
    served = model_by_user(measured.model_requests)
    parts = first_parts(measured.replies)
    numbers = [PhaseNumbers(result, ops, served, parts) for result in measured.results]
    evidence = section(numbers, len(measured.ops), len(measured.model_requests))
    write_rows(log_dir / "voice-turns.jsonl", numbers)
    evidence.details[:0] = [measured.warmup, *measured.logs]
    evidence.note(f"per-turn data: {log_dir / 'voice-turns.jsonl'}")
    tables = [
        "1. Voice turn: transcript_created in → first `say` out (ms)\n\n" + turn_table(numbers),
        "2. fetch endpoint with the brain up (ms)\n\n" + fetch_table(numbers),
        "3. Where a turn's time goes, p50 / p99 (ms)\n\n" + stage_table(numbers),
        "4. One call's goodbye and another call's turn (model 0 ms)\n\n"
        + voice_goodbye.table(measured.goodbye),
    ]
    details = render_details([evidence, voice_goodbye.section(measured.goodbye)])
    return "\n\n".join(["\n".join(header), *tables, NOTE, details])


def main(argv: list[str] | None = None) -> int:
    return run_and_print(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
