"""The frame of a benchmark that runs the services as processes (voice, VAPI): provision
Kafka and Redis, note the machine and the Kafka floor, measure, tear down what was started."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from bench.harness import infra as infra_mod
from bench.harness import kafka_floor
from bench.harness.stats import summary_ms

M = TypeVar("M")


@dataclass(frozen=True)
class StackRun(Generic[M]):
    """What one run measured, with the facts its report starts with."""

    measured: M
    facts: list[str]
    log_dir: Path
    started_at: datetime
    finished_at: datetime


async def on_bench_infra(
    name: str, keep_infra: bool, measure: Callable[[infra_mod.Infra, Path], Awaitable[M]]
) -> StackRun[M]:
    """Run `measure(infra, log_dir)` on the bench's Kafka and Redis (logs under `name`)."""
    started_at = datetime.now(UTC)
    log_dir = infra_mod.BENCH_DATA_DIR / "logs" / f"{name}-{started_at:%Y%m%dT%H%M%SZ}"
    print(f"provisioning Kafka and Redis (logs of this run: {log_dir})", flush=True)
    infra = infra_mod.provision()
    try:
        facts = await infra_mod.machine_facts(infra)
        acks, hops = await kafka_floor.measure(infra)
        facts.append(
            f"Kafka floor, nothing else running: produce ack (acks=all) {summary_ms(acks)};"
            f" produce → consumer receives {summary_ms(hops)}"
        )
        measured = await measure(infra, log_dir)
    finally:
        if not keep_infra:
            infra_mod.teardown(infra)
    return StackRun(measured, facts, log_dir, started_at, datetime.now(UTC))
