"""Worker restart benchmark: a SIGKILLed brain or egress worker, restarted at once, with
dynamic and with static group membership (issue 11 part 4).

    python bench/restart_bench.py              # full run: 3 repetitions per row (~2 minutes)
    python bench/restart_bench.py --reps 1     # smoke run

For each membership mode a fresh deployment (ingress, brain, egress as `switchboard`
processes, the fake model in its own process); for each worker and repetition: one chat
message answered end to end, SIGKILL the worker, start it again at once with the same
environment, send a chat message, and time kill → reply, start → reply and start → ready.
The table gives median / max seconds per row. Goal: start → reply ≤ 2 s with static
membership.

Kafka and Redis come from KAFKA_BOOTSTRAP_SERVERS / REDIS_URL, or the project's own are
started on bench ports (see bench/harness/infra.py) and stopped at the end. The machine is
shared and has 2 cores: compare rows within one run. Method and results: docs/benchmarks.md,
section "Worker restarts".
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/restart_bench.py` (what `make bench` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import infra as infra_mod
from bench.harness import restart
from bench.harness.entry import bench_parser, run_and_print
from bench.harness.report import render_details

NOTE = """\
What was measured (seconds, bench clock): `kill` = just before SIGKILL of the old process;
`start` = just before the new process is spawned (same argv, port and environment), a few ms
after the kill; `reply` = the chat client receives the reply frame of the message sent right
after the restart was spawned; `ready` = the restarted process's /readyz first answers 200
(polled every 20 ms). `partitions` (brain only) = its first `brain.partitions.assigned` log
line. Dynamic: no KAFKA_GROUP_INSTANCE_ID; static: a fixed id per worker. Session timeout
10 s unless the row says otherwise."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, quick=False)
    parser.add_argument("--reps", type=int, default=3, help="restarts per row (default 3)")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> str:
    """Provision Kafka/Redis, run every mode, tear down what was started."""
    started_at = datetime.now(UTC)
    log_dir = infra_mod.BENCH_DATA_DIR / "logs" / f"restart-{started_at:%Y%m%dT%H%M%SZ}"
    print(f"provisioning Kafka and Redis (logs of this run: {log_dir})", flush=True)
    infra = infra_mod.provision()
    began = time.monotonic()
    try:
        facts = await infra_mod.machine_facts(infra)
        config = restart.RestartConfig(reps=args.reps)
        table, section = await restart.run(infra, config, log_dir)
    finally:
        if not args.keep_infra:
            infra_mod.teardown(infra)
    print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
    header = [
        f"Switchboard worker restart benchmark ({args.reps} repetitions per row)",
        f"run: {started_at:%Y-%m-%d %H:%M:%S} → {datetime.now(UTC):%H:%M:%S} UTC",
        *facts,
    ]
    return "\n\n".join(
        ["\n".join(header), f"{section.title}\n\n{table}", NOTE, render_details([section])]
    )


def main(argv: list[str] | None = None) -> int:
    return run_and_print(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
