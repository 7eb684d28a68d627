"""Cluster benchmark: what replicated Kafka and Redis Cluster cost the chat path.

    python bench/cluster_bench.py            # full run (~12 minutes on 2 cores)
    python bench/cluster_bench.py --quick    # smoke run (~5 minutes)

Four layouts (bench/harness/cluster_infra.py): one broker or three (replication 3,
min.insync.replicas 2, acks=all), one Redis server or a Redis Cluster of 3 masters with a
replica each. All run at once; each round measures every layout one after the other, with
the same sub-benchmarks of bench/brain_bench.py:

- the Kafka floor (one acks=all produce, one produce -> consume hop, alone);
- benchmark 1, orchestration overhead: ingress, brain and egress as processes, chat
  WebSocket sessions at a steady rate, overhead = reply received - model time (1a/1b with the
  brain's `llm_end` as model time, 1c/1d with the fake server's own time);
- benchmark 2a, maximum turns/s of ONE brain worker (instant engine) draining a pre-filled
  inbound topic.

Prints each round's numbers and the ratios to the first layout within the same round (the
machine is shared: compare ratios, not absolutes across runs). docs/benchmarks.md, "Beyond
one machine", says what was measured and reads one full run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/cluster_bench.py` (what `make bench` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import cluster_infra, kafka_floor, overhead, throughput
from bench.harness.entry import bench_parser, run_and_print
from bench.harness.infra import machine_facts
from bench.harness.stats import percentile, steady_rate

FULL = (
    overhead.OverheadConfig(warmup_s=3.0, duration_s=15.0),
    throughput.MaxRateConfig(conversations=500, per_conversation=20),
    2,
)
QUICK = (
    overhead.OverheadConfig(warmup_s=2.0, duration_s=5.0),
    throughput.MaxRateConfig(conversations=200, per_conversation=10),
    1,
)
METRICS = (
    ("ack p50", "Kafka ack p50 ms"),
    ("hop p50", "Kafka hop p50 ms"),
    ("1a", "overhead p50 ms (1a)"),
    ("1b", "overhead p99 ms (1b)"),
    ("1c", "overhead p50 ms (1c)"),
    ("1d", "overhead p99 ms (1d)"),
    ("2a", "max turns/s (2a)"),
)


@dataclass
class Measured:
    """One layout in one round."""

    layout: str
    values: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=None, help="rounds over the four layouts")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> str:
    load, drain, rounds = QUICK if args.quick else FULL
    rounds = args.rounds or rounds
    started_at = datetime.now(UTC)
    log_dir = cluster_infra.DATA_DIR / "logs" / started_at.strftime("%Y%m%dT%H%M%SZ")
    print(f"starting the four layouts' servers (logs of this run: {log_dir})", flush=True)
    cluster_infra.start_all()
    results: list[list[Measured]] = []
    try:
        facts = await machine_facts(cluster_infra.LAYOUTS[0].infra)
        for round_no in range(1, rounds + 1):
            results.append([])
            for layout in cluster_infra.LAYOUTS:
                print(f"round {round_no}: {layout.name} ...", flush=True)
                began = time.monotonic()
                results[-1].append(await _measure(layout, load, drain, log_dir / f"r{round_no}"))
                print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
    finally:
        if not args.keep_infra:
            cluster_infra.stop_all()
    finished_at = datetime.now(UTC)
    mode = "quick run" if args.quick else "full run"
    header = [
        f"Switchboard cluster benchmark ({mode}, {rounds} round(s))",
        f"run: {started_at:%Y-%m-%d %H:%M:%S} → {finished_at:%H:%M:%S} UTC",
        *facts,
    ]
    return "\n".join([*header, "", *_tables(results), "", *_notes(results)])


async def _measure(
    layout: cluster_infra.Layout,
    load: overhead.OverheadConfig,
    drain: throughput.MaxRateConfig,
    log_dir: Path,
) -> Measured:
    infra = layout.infra
    measured = Measured(layout.name)
    acks, hops = await kafka_floor.measure(infra, messages=300)
    measured.values["ack p50"] = percentile(acks, 50)
    measured.values["hop p50"] = percentile(hops, 50)
    section = await overhead.run(infra, load, log_dir / _slug(layout.name))
    for row in section.rows:
        if row.key in ("1a", "1b", "1c", "1d"):
            measured.values[row.key] = _number(row.measured)
    result = await throughput.drain(
        infra,
        purpose="cluster-max",
        conversations=drain.conversations,
        per_conversation=drain.per_conversation,
        log_dir=log_dir / _slug(layout.name),
        timeout_s=drain.timeout_s,
    )
    measured.values["2a"] = steady_rate(result.reply_ms)
    measured.notes.append(
        f"2a: {result.published} events, {result.unique_replies} distinct replies"
        f"{'' if result.finished else ' TIMED OUT'}; {result.log_summary}"
    )
    measured.notes.extend(f"1: {detail}" for detail in section.details if "CPU" in detail)
    return measured


def _tables(results: list[list[Measured]]) -> list[str]:
    names = [layout.name for layout in cluster_infra.LAYOUTS]
    width = max(len(name) for name in names)
    head = "| round | " + "layout".ljust(width) + " | " + " | ".join(t for _, t in METRICS) + " |"
    rule = "|" + "|".join("-" * len(cell) for cell in head.split("|")[1:-1]) + "|"
    lines = ["Measured", head, rule]
    for round_no, layouts in enumerate(results, 1):
        for m in layouts:
            cells = [
                f"{m.values.get(key, float('nan')):.2f}".rjust(len(title)) for key, title in METRICS
            ]
            lines.append(f"| {round_no:>5} | {m.layout.ljust(width)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ratio to the first layout within each round, median over rounds"
        " (times: > 1 is slower; turns/s: < 1 is fewer)",
        head,
        rule,
    ]
    for index, name in enumerate(names):
        cells = []
        for key, title in METRICS:
            ratios = [
                layouts[index].values[key] / layouts[0].values[key]
                for layouts in results
                if layouts[0].values.get(key) and key in layouts[index].values
            ]
            cell = f"{statistics.median(ratios):.2f}x" if ratios else "n/a"
            cells.append(cell.rjust(len(title)))
        lines.append(f"|   all | {name.ljust(width)} | " + " | ".join(cells) + " |")
    return lines


def _notes(results: list[list[Measured]]) -> list[str]:
    lines = ["Evidence:"]
    for round_no, layouts in enumerate(results, 1):
        for m in layouts:
            lines.extend(f"  - round {round_no}, {m.layout}: {note}" for note in m.notes)
    return lines


def _number(text: str) -> float:
    found = re.search(r"[-+]?\d+(?:\.\d+)?", text)
    return float(found.group()) if found else float("nan")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def main(argv: list[str] | None = None) -> int:
    return run_and_print(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
