"""Partitions and the most useful brain worker count: turns/s with 1, 2, 3 workers.

Kafka gives each partition of the inbound topic to one member of the brain's consumer group,
so workers beyond the partition count sit idle. Shown twice in one run: with 6 partitions
(the default) the rate should grow with every worker, with 2 partitions the third worker
should get nothing and add nothing.

This machine has 2 shared cores, so workers that are CPU-bound could not show more than two
workers' worth; the numbers would measure the machine, not the assignment. Each worker is
therefore given a known, CPU-light capacity: a 1 s model (the fake) and at most
`max_in_flight` turns at once (`BRAIN_MAX_IN_FLIGHT`), i.e. about max_in_flight / 1 s
turns/s. With a slow model that is what a worker's capacity is in production too: turns in
flight, not CPU. Ratios within one run are what to read, not the absolute rates.

Why 50 turns over 1 s and not 10 over 200 ms (the same capacity): with 10 in flight a worker
holding a single partition reached only ~60 % of it (two runs, see docs/benchmarks.md,
"Sizing"), which would have hidden the assignment effect behind a feeding one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import procs
from bench.harness.infra import Infra, create_topics, drop_namespace, new_namespace
from bench.harness.kafka_io import TopicCounter, chat_messages, prepublish, read_records
from bench.harness.sizing_group import wait_stable
from bench.harness.stats import steady_rate
from bench.harness.throughput import API_KEY, Drain, brain_env
from shared.contracts import Channel


@dataclass(frozen=True)
class ScaleConfig:
    """The grid (partitions x workers) and each run's load and per-worker capacity."""

    partitions: tuple[int, ...] = (6, 2)
    workers: tuple[int, ...] = (1, 2, 3)
    conversations: int = 300
    per_conversation: int = 3
    model_latency_ms: int = 1000
    max_in_flight: int = 50
    timeout_s: float = 180.0

    @property
    def worker_capacity(self) -> float:
        """Turns/s one worker can do: its turns in flight over the model's latency."""
        return self.max_in_flight / (self.model_latency_ms / 1000)


@dataclass
class ScaleRun:
    """One cell of the grid."""

    partitions: int
    workers: int
    held: list[int]
    rate: float
    published: int
    replies: int
    finished: bool
    cpu: str = ""
    logs: list[str] = field(default_factory=list)


async def run(infra: Infra, config: ScaleConfig, log_dir: Path) -> list[ScaleRun]:
    """Every (partitions, workers) cell, each in its own namespace, one fake model for all."""
    model = procs.fake_model(config.model_latency_ms, API_KEY, log_dir).start().wait_ready()
    runs = []
    try:
        for partitions in config.partitions:
            for workers in config.workers:
                cell = await _cell(infra, config, partitions, workers, model, log_dir)
                print(
                    f"  {partitions} partitions, {workers} workers: {cell.rate:.0f} turns/s,"
                    f" partitions held {cell.held}",
                    flush=True,
                )
                runs.append(cell)
    finally:
        model.stop()
    return runs


async def _cell(
    infra: Infra,
    config: ScaleConfig,
    partitions: int,
    workers: int,
    model: procs.Child,
    log_dir: Path,
) -> ScaleRun:
    """Start `workers` brains, wait for a stable group, then publish and time the replies."""
    namespace = new_namespace(f"sizing-p{partitions}w{workers}")
    topics = await create_topics(infra, namespace, partitions)
    bootstrap = infra.kafka_bootstrap_servers
    env = brain_env(infra, namespace, model.url + "/v1") | {
        "SWITCHBOARD_TOPIC_PARTITIONS": str(partitions),
        "BRAIN_MAX_IN_FLIGHT": str(config.max_in_flight),
    }
    brains = [procs.bench_brain(env, log_dir, "configured").start() for _ in range(workers)]
    counter = TopicCounter(bootstrap, topics.replies(Channel.CHAT))
    try:
        for brain in brains:
            brain.wait_ready()
        # Publish only once the group has settled: a rebalance in the middle would be
        # counted as slowness of the workers.
        held = await wait_stable(bootstrap, f"{namespace}.brain", workers, partitions)
        await counter.start()
        messages = chat_messages(config.conversations, config.per_conversation, namespace)
        pids: dict[str, int | None] = {f"brain-{i + 1}": b.pid for i, b in enumerate(brains)}
        pids["fake-model"] = model.pid
        meter = procs.CpuMeter(pids)
        meter.mark_start()
        published = await prepublish(bootstrap, topics.inbound, messages)
        finished = await _wait_replies(counter, brains, published, config.timeout_s)
        meter.mark_end()
        drain = Drain(
            published, replies=await read_records(bootstrap, topics.replies(Channel.CHAT))
        )
        return ScaleRun(
            partitions,
            workers,
            held,
            steady_rate(drain.reply_ms),
            published,
            drain.unique_replies,
            finished,
            meter.describe(),
            [procs.describe_log(b) for b in brains],
        )
    finally:
        await counter.stop()
        for brain in brains:
            brain.stop()
        await drop_namespace(infra, namespace)


async def _wait_replies(
    counter: TopicCounter, brains: list[procs.Child], published: int, timeout_s: float
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for brain in brains:
            if brain.process is not None and brain.process.poll() is not None:
                raise RuntimeError(f"brain exited:\n{brain.log_tail()}")
        if await counter.count() >= published:
            return True
        await asyncio.sleep(0.2)
    return False
