"""Sizing benchmark: Redis memory and brain RSS per 1,000 active conversations, and how many
brain workers the partitions can use.

    python -m bench.sizing_bench            # full run (~10 minutes on 2 shared cores)
    python -m bench.sizing_bench --quick    # smoke run (~3-5 minutes)
    make bench                              # runs every bench/*.py: this file, full

1. 1,000 conversations (80 % web chat, 20 % SMS) grow to 1, 5, 20 and 40 turns each through
   ONE brain worker process (OpenAI engine, fake model at 0 ms with support-length answers);
   after each depth: `INFO memory` used_memory over a baseline, every key of the run's prefix
   sized with `MEMORY USAGE` and grouped by kind, TTLs, the history lists' lengths, and the
   worker's VmRSS.
2. Turns/s with 1, 2 and 3 brain workers on 6 and on 2 partitions (1 s model, 50 turns in
   flight per worker, so a worker's capacity is known and CPU-light), with the partitions
   each member holds read from the group coordinator.

Kafka and Redis come from KAFKA_BOOTSTRAP_SERVERS / REDIS_URL, or the project's own are started
on bench ports (bench/harness/infra.py). What is measured and why: docs/benchmarks.md, "Sizing".
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/sizing_bench.py` (what `make bench` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import infra as infra_mod
from bench.harness import sizing_memory, sizing_report, sizing_scale
from bench.harness.entry import bench_parser, run_and_print


@dataclass(frozen=True)
class Plan:
    """Sizes of both parts for one run."""

    memory: sizing_memory.MemoryConfig
    scale: sizing_scale.ScaleConfig


FULL = Plan(sizing_memory.MemoryConfig(), sizing_scale.ScaleConfig())
QUICK = Plan(
    sizing_memory.MemoryConfig(conversations=200, depths=(1, 5, 20, 30)),
    sizing_scale.ScaleConfig(conversations=150, per_conversation=2),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    only = ("memory,scale", "comma-separated parts: memory, scale (default both)")
    return bench_parser(__doc__, only=only).parse_args(argv)


async def run(args: argparse.Namespace) -> str:
    plan = QUICK if args.quick else FULL
    chosen = {part.strip() for part in args.only.split(",")}
    started_at = datetime.now(UTC)
    log_dir = infra_mod.BENCH_DATA_DIR / "logs" / started_at.strftime("sizing-%Y%m%dT%H%M%SZ")
    print(f"provisioning Kafka and Redis (logs of this run: {log_dir})", flush=True)
    infra = infra_mod.provision()
    blocks: list[str] = []
    try:
        facts = await infra_mod.machine_facts(infra)
        if "memory" in chosen:
            began = time.monotonic()
            print("running part 1: memory per conversation ...", flush=True)
            memory = await sizing_memory.run(infra, plan.memory, log_dir)
            print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
            blocks.append(_memory_report(memory))
        if "scale" in chosen:
            began = time.monotonic()
            print("running part 2: partitions and workers ...", flush=True)
            runs = await sizing_scale.run(infra, plan.scale, log_dir)
            print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
            blocks.append(_scale_report(runs, plan.scale))
    finally:
        if not args.keep_infra:
            infra_mod.teardown(infra)
    finished_at = datetime.now(UTC)
    mode = "quick" if args.quick else "full"
    header = [
        f"Switchboard sizing benchmark ({mode} run)",
        f"run: {started_at:%Y-%m-%d %H:%M:%S} → {finished_at:%H:%M:%S} UTC",
        *facts,
    ]
    return "\n".join([*header, "", *blocks])


def _memory_report(result: sizing_memory.MemoryResult) -> str:
    config = result.config
    sms = len(result.sms_conversations)
    base = result.baseline
    lines = [
        f"1. Redis and brain memory: {config.conversations} conversations"
        f" ({config.conversations - sms} chat, {sms} SMS), one brain worker,"
        " OpenAI engine → fake model (0 ms)",
        "",
        "1a. Redis by depth: INFO memory Δ over the moment before the first turn (whole server),"
        " and MEMORY USAGE of every key of the run's prefix",
        sizing_report.depth_table(result),
        "",
        "1b. Redis bytes per conversation by key kind (MEMORY USAGE, every key of the prefix)",
        sizing_report.kind_table(result),
        "",
        "1c. History cap: per-conversation averages",
        sizing_report.history_table(result),
        "",
        "1d. Brain worker process memory (/proc/<pid>/status)",
        sizing_report.rss_table(result),
        "",
        f"  - baseline (before the first turn): used_memory {base['used_memory'] / 2**20:.1f}"
        f" MiB, {base['connected_clients']} clients;"
        f" stage wall times: "
        + ", ".join(f"{s.depth} turns {s.wall_s:.0f} s" for s in result.stages),
        f"  - {result.log_summary}",
    ]
    return "\n".join(lines)


def _scale_report(runs: list[sizing_scale.ScaleRun], config: sizing_scale.ScaleConfig) -> str:
    lines = [
        f"2. Partitions and brain workers: {config.conversations} chat conversations x"
        f" {config.per_conversation} turns published after the group is stable; fake model"
        f" {config.model_latency_ms} ms; BRAIN_MAX_IN_FLIGHT={config.max_in_flight} per worker"
        f" (capacity ≈ {config.worker_capacity:.0f} turns/s per worker)",
        sizing_report.scale_table(runs, config),
        "",
    ]
    for run in runs:
        lines.append(
            f"  - {run.partitions} partitions, {run.workers} workers: {run.replies} distinct"
            f" replies to {run.published} turns; {run.cpu}"
        )
        lines += [f"      {log}" for log in sorted(set(run.logs))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_and_print(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
