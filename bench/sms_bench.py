"""SMS channel benchmarks: ingress webhooks/s and egress sends/s against the fake Twilio.

    python bench/sms_bench.py              # full run (~2 minutes on 2 cores)
    python bench/sms_bench.py --quick      # smoke run (~40 s)
    python bench/sms_bench.py --only 2     # just the egress benchmark

1. Ingress: ONE `switchboard ingress` process; signed Twilio inbound webhooks (distinct
   MessageSid and From each) posted at several concurrency levels, from aiohttp and from
   httpx.AsyncClient (httpx's client is slower than one ingress: its rows measure httpx).
   A 200 means Kafka acknowledged the InboundMessage (acks=all); the inbound topic is counted
   and read back afterwards, so the rate counts only messages that arrived.
2. Egress: ONE `switchboard egress` process and `switchboard fake twilio --latency-ms 50` in
   its own process; replies pre-published to the SMS reply topic, sends/s measured on the
   fake's clock from first send to last: batch size 1 (sequential baseline), the default
   batch (64), and the default batch with the per-sender limiter at 20/s and 50/s. The fake
   must end up with exactly one SMS per reply.

Prints one table per benchmark and the evidence behind it. Kafka and Redis come from
KAFKA_BOOTSTRAP_SERVERS / REDIS_URL, or the project's own are started on bench ports (see
bench/harness/infra.py) and stopped at the end. Nothing talks to the real Twilio.
The machine is shared and has 2 cores: compare ratios within one run, not absolutes across
runs. What is measured and why: docs/benchmarks.md, section "SMS channel".
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/sms_bench.py` (what `make bench` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.harness import infra as infra_mod
from bench.harness import sms_egress, sms_ingress
from bench.harness.entry import bench_parser, run_and_print
from bench.harness.report import Section, render_details


@dataclass(frozen=True)
class Plan:
    """Sizes of both benchmarks for one run."""

    ingress: sms_ingress.IngressConfig
    egress: sms_egress.EgressConfig


FULL = Plan(sms_ingress.IngressConfig(), sms_egress.EgressConfig())
QUICK = Plan(
    sms_ingress.IngressConfig(
        levels=(
            ("aiohttp", 1, 200),
            ("aiohttp", 16, 1500),
            ("aiohttp", 64, 1500),
            ("httpx", 64, 800),
        ),
        warmup=300,
    ),
    sms_egress.EgressConfig(
        runs=(
            sms_egress.EgressRun("sequential baseline", 60, 60, batch_max_records=1, baseline=True),
            sms_egress.EgressRun("default batch", 800, 400),
            sms_egress.EgressRun("default batch, limiter 20/s", 100, 50, sends_per_second=20),
        )
    ),
)

NOTE = """\
What was measured:
- ingress: closed loop, `concurrency` webhooks in flight from one HTTP client in the bench
  process (which shares the 2 cores with ingress, Kafka and Redis); latency is the client's
  post → response. Every request is signature-checked, resolved to a conversation (Redis)
  and published with acks=all before the 200; "on topic" is what the inbound topic gained.
  The aiohttp rows measure ingress; the httpx rows are bound by httpx's own client CPU
  (see "bench client" in the evidence below), kept to show that limit.
- egress: sends/s on the fake Twilio's clock (arrival of the first accepted send → the last);
  each send waits 50 ms inside the fake. "peak in flight" is the most sends the fake held at
  once. With the limit "off" EGRESS_SMS_SENDS_PER_SECOND is 1e6 (a 1 µs GCRA interval, far
  above what is measured; the limiter still runs once per send)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    only = ("1,2", "comma-separated benchmarks to run (default 1,2)")
    return bench_parser(__doc__, only=only).parse_args(argv)


async def run(args: argparse.Namespace) -> str:
    """Provision Kafka/Redis, run the chosen benchmarks, tear down what was started."""
    plan = QUICK if args.quick else FULL
    chosen = {part.strip() for part in args.only.split(",")}
    started_at = datetime.now(UTC)
    log_dir = infra_mod.BENCH_DATA_DIR / "logs" / f"sms-{started_at:%Y%m%dT%H%M%SZ}"
    print(f"provisioning Kafka and Redis (logs of this run: {log_dir})", flush=True)
    infra = infra_mod.provision()
    results: list[tuple[str, str, Section]] = []
    try:
        facts = await infra_mod.machine_facts(infra)
        if "1" in chosen:
            results.append(
                await _timed("1", "ingress", sms_ingress.run(infra, plan.ingress, log_dir))
            )
        if "2" in chosen:
            results.append(await _timed("2", "egress", sms_egress.run(infra, plan.egress, log_dir)))
    finally:
        if not args.keep_infra:
            infra_mod.teardown(infra)
    return _report(args, facts, results, started_at, datetime.now(UTC))


async def _timed(
    key: str, name: str, step: Awaitable[tuple[str, Section]]
) -> tuple[str, str, Section]:
    """Await one benchmark coroutine, printing how long it took."""
    began = time.monotonic()
    print(f"running benchmark {key} ({name}) ...", flush=True)
    table, section = await step
    print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
    return section.title, table, section


def _report(
    args: argparse.Namespace,
    facts: list[str],
    results: list[tuple[str, str, Section]],
    started_at: datetime,
    finished_at: datetime,
) -> str:
    mode = "quick" if args.quick else "full"
    header = [
        f"Switchboard SMS channel benchmarks ({mode} run)",
        f"run: {started_at:%Y-%m-%d %H:%M:%S} → {finished_at:%H:%M:%S} UTC",
        *facts,
    ]
    tables = [f"{title}\n\n{table}" for title, table, _ in results]
    details = render_details([section for _, _, section in results])
    return "\n\n".join(["\n".join(header), *tables, NOTE, details])


def main(argv: list[str] | None = None) -> int:
    return run_and_print(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
