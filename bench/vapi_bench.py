"""VAPI custom-LLM benchmark: first-chunk overhead and assistant-request latency.

    python bench/vapi_bench.py            # full run (~2 minutes on 2 cores)
    python bench/vapi_bench.py --quick    # smoke run (~40 s)

ONE ingress, ONE brain and ONE egress process (`switchboard ...`) on real Kafka and Redis;
the brain's OpenAI engine talks to the fake model (0 ms) in its own process
(`bench.harness.timed_fake`, which records its own time to first token per request). The
bench plays VAPI: signed server-URL messages and custom-LLM requests over one kept-alive
aiohttp session (`bench.harness.vapi_calls`).

1. First-chunk overhead: per custom-LLM request, t0 just before the bench sends it (VAPI's
   body: model, the growing `messages`, `stream: true`, the call), t1 when the first SSE
   chunk with content is read; overhead = (t1 - t0) - the fake model's own time to first
   token for that turn. One call at a time; 20 calls at once with a caller's pace (1-3 s
   between an answer and the next request); 20 calls at once back to back (0.1-0.3 s).
   Goal: p50 ≤ 15 ms, p99 ≤ 50 ms. Fillers and apologies are counted (0 expected).
2. `assistant-request` with the brain up: send → last byte of the answer, and whether the
   greeting came from the brain or was the fallback.
3. Where the first chunk's time goes: stages from the ops topic, the fake model's records
   and the VAPI reply topic's record timestamps.

Kafka and Redis come from KAFKA_BOOTSTRAP_SERVERS / REDIS_URL, or the project's own are
started on bench ports (bench/harness/infra.py) and stopped at the end. The machine is
shared and has 2 cores: compare ratios within one run, not absolutes across runs. What is
measured and why: docs/benchmarks.md, section "VAPI custom LLM".
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/vapi_bench.py` (what `make bench` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.harness import infra as infra_mod
from bench.harness import procs, vapi_stack
from bench.harness.entry import bench_parser, run_and_print
from bench.harness.kafka_io import read_records
from bench.harness.report import render_details
from bench.harness.stack_run import on_bench_infra
from bench.harness.vapi_calls import VapiCaller, new_tag
from bench.harness.vapi_phases import PhaseResult, VapiConfig, check_stack, run_phase, warm_up
from bench.harness.vapi_report import (
    PhaseNumbers,
    Topics,
    answers_table,
    first_chunk_table,
    goal_table,
    greeting_table,
    model_by_user,
    section,
    stage_table,
    write_rows,
)
from services.channels.vapi.profile import NAME as VAPI

FULL = VapiConfig()
QUICK = VapiConfig(sequential_calls=6, concurrent_calls=20, turns_per_call=4, warmup_calls=2)

NOTE = """\
What was measured:
- first chunk: t0 = the bench's monotonic clock just before it sends a custom-LLM request
  (body and headers built before); t1 = when it reads the first SSE chunk with non-empty
  `delta.content`. "model TTFT" is the fake model's own time to first token for the brain's
  model request of that turn (first byte in → first content chunk out, recorded inside its
  process, same clock), so the brain's model client (openai SDK, HTTP) counts as overhead.
  The fake answers "You said: <the caller's line>" (two sentences) at 0 ms; the first
  sentence is streamed as soon as it is complete. Turns within a call are sequential; "pause"
  is the time between the greeting or an answer's [DONE] and the next request; with
  "speech-updates" VAPI's `speech-update` (user, started) is posted 0.5 s before each
  request (a barge-in signal for the brain, as VAPI's default serverMessages send it). With
  20 calls, the first calls' starts are spread over one call's length.
- assistant-request: client-side, send → last byte of the answer (HMAC-signed, kept-alive
  connection); it holds while ingress publishes GREETING (SYNC), the brain writes the
  greeting (a model call) and egress rings ingress's inbox. "from brain" / "fallback": the
  answer's firstMessage is the brain's greeting / VAPI_FALLBACK_GREETING.
- stages: wall-clock ops times are mapped onto the monotonic clock with each turn's t0,
  read on both clocks together; the stages add up to the first chunk."""


@dataclass
class Measured:
    """What the stack run produced, for the report."""

    results: list[PhaseResult]
    warmup: str
    ops: list[Any] = field(default_factory=list)
    replies: list[Any] = field(default_factory=list)
    model_requests: list[dict[str, Any]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--stream-direct",
        choices=("on", "off"),
        default="on",
        help="BRAIN_STREAM_DIRECT of the brain: `off` measures egress's path alone (the"
        " brain does not hand streamed parts to the holder's inbox itself)",
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> str:
    """Provision Kafka/Redis, measure, tear down what was started, build the report."""
    config = QUICK if args.quick else FULL
    done = await on_bench_infra(
        "vapi",
        args.keep_infra,
        lambda infra, log_dir: _measure(infra, config, log_dir, args.stream_direct == "on"),
    )
    return _report(args, done.facts, done.measured, done.log_dir, done.started_at, done.finished_at)


async def _measure(
    infra: infra_mod.Infra, config: VapiConfig, log_dir: Path, stream_direct: bool
) -> Measured:
    """Start the stack in a fresh namespace, drive it, read the topics, clean up."""
    namespace = infra_mod.new_namespace("vapi")
    topics = await infra_mod.create_topics(infra, namespace)
    print("starting the fake model, ingress, brain, egress ...", flush=True)
    stack = vapi_stack.start(infra, namespace, log_dir, stream_direct)
    try:
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=0)  # one connection per call on the line
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            measured = await _drive(VapiCaller(stack, http, new_tag()), http, infra, config)
            measured.model_requests = await stack.model_requests(http)
    finally:
        stack.stop()
    try:
        bootstrap = infra.kafka_bootstrap_servers
        measured.ops = await read_records(bootstrap, topics.ops)
        measured.replies = await read_records(bootstrap, topics.replies(VAPI))
    finally:
        await infra_mod.drop_namespace(infra, namespace)
    measured.logs = [procs.describe_log(child) for child in stack.services.values()]
    return measured


async def _drive(
    caller: VapiCaller, http: aiohttp.ClientSession, infra: infra_mod.Infra, config: VapiConfig
) -> Measured:
    """Warm-up, then the phases."""
    began = time.monotonic()
    warm = await warm_up(caller, http, config.warmup_calls)
    answered = sum(t.answered for t in warm.turns)
    warmup = (
        f"warm-up: {len(warm.calls)} calls (2 at once, 2 turns each) in"
        f" {time.monotonic() - began:.1f} s, {answered} of {len(warm.turns)} turns answered,"
        f" {sum(g.fallback for g in warm.greetings)} fallback greetings"
    )
    if not answered:
        raise RuntimeError(f"no warm-up turn was answered:\n{warmup}")
    results: list[PhaseResult] = []
    first_index = 0
    for phase in config.phases():
        check_stack(caller.stack)
        print(f"  {phase.label}: {phase.calls} calls ...", flush=True)
        began = time.monotonic()
        results.append(await run_phase(caller, http, infra, phase, first_index))
        print(f"    done in {time.monotonic() - began:.0f} s", flush=True)
        first_index += phase.calls
    check_stack(caller.stack)
    return Measured(results, warmup)


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
        f"Switchboard VAPI custom-LLM benchmark ({mode}, model 0 ms,"
        f" BRAIN_STREAM_DIRECT {args.stream_direct})",
        f"run: {started_at:%Y-%m-%d %H:%M:%S} → {finished_at:%H:%M:%S} UTC",
        *facts,
    ]
    topics = Topics.read(measured.ops, measured.replies)
    served = model_by_user(measured.model_requests)
    numbers = [PhaseNumbers(result, topics, served) for result in measured.results]
    evidence = section(numbers, topics, len(measured.model_requests))
    write_rows(log_dir / "vapi-turns.jsonl", numbers)
    evidence.details[:0] = [measured.warmup, *measured.logs]
    evidence.note(f"per-turn data: {log_dir / 'vapi-turns.jsonl'}")
    tables = [
        "1. First-chunk overhead against the goal (ms)\n\n" + goal_table(numbers),
        "2. Custom-LLM request → first SSE chunk with content (ms)\n\n"
        + first_chunk_table(numbers),
        "3. Answers: fillers and apologies\n\n" + answers_table(numbers),
        "4. assistant-request with the brain up (ms)\n\n" + greeting_table(numbers),
        "5. Where the first chunk's time goes, p50 / p99 (ms)\n\n" + stage_table(numbers),
        "6. Where an assistant-request's time goes, p50 / p99 (ms)\n\n"
        + stage_table(numbers, greeting=True),
    ]
    details = render_details([evidence])
    return "\n\n".join(["\n".join(header), *tables, NOTE, details])


def main(argv: list[str] | None = None) -> int:
    return run_and_print(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
