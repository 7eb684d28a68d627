"""Brain benchmarks: orchestration overhead, throughput, slow-model concurrency, lock handoff.

    python -m bench.brain_bench            # full run (~4 minutes on 2 cores)
    python -m bench.brain_bench --quick    # smoke run (~1.5 minutes)
    make bench                             # runs every bench/*.py: this file, full

Prints one table (target, measured, PASS/MISS) and the evidence behind each number. Kafka
and Redis come from KAFKA_BOOTSTRAP_SERVERS / REDIS_URL, or the project's own are started on
bench ports (see bench/harness/infra.py). No real model or provider is ever called: the model
is the in-process InstantEngine or services/fakes/openai_server.py on 127.0.0.1.
What is measured and why: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/brain_bench.py` (what `make bench` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.harness import infra as infra_mod
from bench.harness import lock_handoff, overhead, throughput
from bench.harness.entry import bench_parser, run_and_print
from bench.harness.report import Row, Section, render_details, render_table


@dataclass(frozen=True)
class Plan:
    """Sizes of every sub-benchmark for one run."""

    overhead: overhead.OverheadConfig
    max_rate: throughput.MaxRateConfig
    slow_model: throughput.SlowModelConfig
    locks: lock_handoff.LockConfig


FULL = Plan(
    overhead.OverheadConfig(),
    throughput.MaxRateConfig(),
    throughput.SlowModelConfig(),
    lock_handoff.LockConfig(),
)
QUICK = Plan(
    overhead.OverheadConfig(warmup_s=2.0, duration_s=5.0),
    throughput.MaxRateConfig(
        conversations=200, per_conversation=20, http_conversations=200, http_per_conversation=5
    ),
    throughput.SlowModelConfig(per_conversation=2, baseline_s=6.0),
    lock_handoff.LockConfig(handoffs=200, in_worker_pairs=200, warmup=20),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    only = ("1,2,3,4", "comma-separated sub-benchmarks to run (default all)")
    parser = bench_parser(__doc__, only=only)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="benchmarks 1 and 2: run the brains under cProfile, stats to\n"
        "DIR/brain-1.prof, brain-2a.prof, brain-2b.prof (the numbers are then slower)",
    )
    parser.add_argument(
        "--what-if-redis-pool",
        type=int,
        default=None,
        metavar="N",
        help="benchmarks 2 and 3: give the brain's Redis pools N connections (a what-if,\n"
        "not the shipped configuration; see docs/benchmarks.md)",
    )
    return parser.parse_args(argv)


def what_if_flags(args: argparse.Namespace) -> list[str]:
    """`bench.harness.brain_worker` switches for the what-if options (empty: as shipped)."""
    flags = []
    if args.what_if_redis_pool:
        flags += ["--redis-max-connections", str(args.what_if_redis_pool)]
    return flags


async def run(args: argparse.Namespace) -> str:
    plan = QUICK if args.quick else FULL
    chosen = {part.strip() for part in args.only.split(",")}
    started_at = datetime.now(UTC)
    log_dir = infra_mod.BENCH_DATA_DIR / "logs" / started_at.strftime("%Y%m%dT%H%M%SZ")
    print(f"provisioning Kafka and Redis (logs of this run: {log_dir})", flush=True)
    infra = infra_mod.provision()
    try:
        facts = await infra_mod.machine_facts(infra)
        steps: list[tuple[str, Callable[[], Awaitable[Section]]]] = [
            ("1", lambda: overhead.run(infra, plan.overhead, log_dir, args.profile)),
            (
                "2",
                lambda: throughput.run_max_rate(
                    infra, plan.max_rate, log_dir, args.profile, what_if_flags(args)
                ),
            ),
            (
                "3",
                lambda: throughput.run_slow_model(
                    infra, plan.slow_model, log_dir, what_if_flags(args)
                ),
            ),
            ("4", lambda: lock_handoff.run(infra, plan.locks)),
        ]
        sections = []
        for key, step in steps:
            if key not in chosen:
                continue
            began = time.monotonic()
            print(f"running benchmark {key} ...", flush=True)
            section = await step()
            print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
            sections.append(section)
    finally:
        if not args.keep_infra:
            infra_mod.teardown(infra)
    finished_at = datetime.now(UTC)
    return _report(args, facts, sections, started_at, finished_at)


def _report(
    args: argparse.Namespace,
    facts: list[str],
    sections: list[Section],
    started_at: datetime,
    finished_at: datetime,
) -> str:
    rows: list[Row] = [row for section in sections for row in section.rows]
    mode = "quick" if args.quick else "full"
    if what_if_flags(args):
        mode += f", WHAT-IF brain flags: {' '.join(what_if_flags(args))}"
    header = [
        f"Switchboard brain benchmarks ({mode} run)",
        f"run: {started_at:%Y-%m-%d %H:%M:%S} → {finished_at:%H:%M:%S} UTC",
        *facts,
    ]
    return "\n".join([*header, "", render_table(rows), "", render_details(sections)])


def main(argv: list[str] | None = None) -> int:
    return run_and_print(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
