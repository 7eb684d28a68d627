"""Benchmarks 2 and 3: turns/s of ONE brain worker process draining a pre-filled topic.

Inbound events (valid chat `InboundMessage`s) are published to the inbound topic of a fresh
namespace first; then one brain worker starts and answers them. Replies are counted on the
chat reply topic and their Kafka timestamps (set by the brain's producer) give the rate, so
the measuring side reads nothing while the brain works.

- Benchmark 2 (instant model): rate over the steady middle (10th → 90th percentile reply),
  excluding group join and the draining tail. Run with the in-process `InstantEngine` (the
  brain's own ceiling) and with the OpenAI engine against the fake server at latency 0.
- Benchmark 3 (1-second model, 500 conversations): rate from the first model call
  (`llm_start` on the ops topic) to the last reply; compared with a one-at-a-time consumer.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import baseline, procs
from bench.harness.infra import PARTITIONS, Infra, create_topics, drop_namespace, new_namespace
from bench.harness.kafka_io import (
    TopicCounter,
    chat_messages,
    committed,
    prepublish,
    read_records,
)
from bench.harness.report import Row, Section
from bench.harness.stats import occurred_s, peak_overlap, percentile, steady_rate, summary_ms
from shared.contracts import Channel

API_KEY = "bench-key"


@dataclass(frozen=True)
class MaxRateConfig:
    """Benchmark 2: events pre-published (conversations x messages each) and the target."""

    conversations: int = 1000
    per_conversation: int = 20
    http_conversations: int = 1000
    http_per_conversation: int = 5
    target_per_s: float = 1000.0
    timeout_s: float = 300.0


@dataclass(frozen=True)
class SlowModelConfig:
    """Benchmark 3: load, model latency, baseline duration and the targets."""

    conversations: int = 500
    per_conversation: int = 4
    model_latency_ms: int = 1000
    baseline_s: float = 20.0
    target_per_s: float = 400.0
    target_ratio: float = 50.0
    timeout_s: float = 180.0


@dataclass
class Drain:
    """What one worker did with a pre-filled inbound topic."""

    published: int
    replies: list[Any] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)
    cpu: procs.CpuMeter | None = None
    wall_s: float = 0.0
    finished: bool = False
    log_summary: str = ""

    @property
    def reply_ms(self) -> list[float]:
        """When each distinct reply first reached the topic (redelivered copies dropped)."""
        first: dict[str, float] = {}
        for record in self.replies:
            first.setdefault(json.loads(record.value)["reply_id"], float(record.timestamp))
        return list(first.values())

    @property
    def unique_replies(self) -> int:
        return len(self.reply_ms)

    def ops_step(self, step: str) -> list[dict[str, Any]]:
        return [e for e in self.ops if e.get("step") == step and e.get("stage") == "brain"]

    def lock_waits(self) -> str:
        """One worker never contends with itself: any lock wait is a lock its own failed
        turn left behind (released only when the lease runs out)."""
        waits = [e.get("duration_ms") or 0.0 for e in self.ops_step("lock_wait")]
        if not waits:
            return "lock_wait events: none"
        return f"lock_wait events: {len(waits)}, {summary_ms(waits)}"


def brain_env(infra: Infra, namespace: str, model_url: str | None) -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "REDIS_URL": infra.redis_url,
        "SWITCHBOARD_TOPIC_NAMESPACE": namespace,
        "SWITCHBOARD_REDIS_PREFIX": namespace,
        "SWITCHBOARD_TOPIC_PARTITIONS": str(PARTITIONS),
        "LOG_LEVEL": "INFO",
    }
    if model_url is not None:
        env |= {
            "BRAIN_ENGINE": "openai",
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": model_url,
            "OPENAI_MODEL": "fake-model",
        }
    return env


async def drain(
    infra: Infra,
    *,
    purpose: str,
    conversations: int,
    per_conversation: int,
    log_dir: Path,
    timeout_s: float,
    model: procs.Child | None = None,
    read_ops: bool = False,
    profile: Path | None = None,
    what_if: list[str] | None = None,
) -> Drain:
    """Pre-publish, start one brain worker, wait until every event is answered, read back."""
    namespace = new_namespace(purpose)
    topics = await create_topics(infra, namespace)
    bootstrap = infra.kafka_bootstrap_servers
    try:
        messages = chat_messages(conversations, per_conversation, namespace)
        result = Drain(await prepublish(bootstrap, topics.inbound, messages))
        counter = TopicCounter(bootstrap, topics.replies(Channel.CHAT))
        await counter.start()
        model_url = model.url + "/v1" if model is not None else None
        engine = "configured" if model is not None else "instant"
        env = brain_env(infra, namespace, model_url)
        brain = procs.bench_brain(env, log_dir, engine, profile, what_if).start()
        pids = {
            "brain": brain.pid,
            **infra.server_pids(),
            "bench": os.getpid(),
        }
        if model is not None:
            pids["fake-model"] = model.pid
        result.cpu = procs.CpuMeter(pids)
        try:
            await _watch(result, counter, brain, timeout_s, f"{namespace}.brain", bootstrap)
        finally:
            brain.stop()
            await counter.stop()
        result.log_summary = procs.describe_log(brain)
        result.replies = await read_records(bootstrap, topics.replies(Channel.CHAT))
        if read_ops:
            records = await read_records(bootstrap, topics.ops)
            result.ops = [json.loads(r.value) | {"_ts": r.timestamp} for r in records]
        return result
    finally:
        await drop_namespace(infra, namespace)


async def _watch(
    result: Drain,
    counter: TopicCounter,
    brain: procs.Child,
    timeout_s: float,
    group_id: str,
    bootstrap: str,
) -> None:
    """Wait until the brain's group has committed every event (each answered or parked).

    The CPU window runs from the first reply to the moment every event has a reply.
    """
    assert result.cpu is not None
    started = time.monotonic()
    first_seen = cpu_done = False
    while time.monotonic() - started < timeout_s:
        if brain.process is not None and brain.process.poll() is not None:
            raise RuntimeError(f"brain exited:\n{brain.log_tail()}")
        count = await counter.count()
        if count and not first_seen:
            first_seen = True
            result.cpu.mark_start()
        if count >= result.published and not cpu_done:
            cpu_done = True
            result.cpu.mark_end()
        if cpu_done and await committed(bootstrap, group_id) >= result.published:
            result.finished = True
            break
        await asyncio.sleep(0.2)
    if not cpu_done:
        result.cpu.mark_end()
    result.wall_s = time.monotonic() - started


async def run_max_rate(
    infra: Infra,
    config: MaxRateConfig,
    log_dir: Path,
    profile_dir: Path | None = None,
    what_if: list[str] | None = None,
) -> Section:
    """Benchmark 2: instant engine in-process, then the OpenAI engine on the fake at 0 ms.

    With `profile_dir`, each brain runs under cProfile (`brain-2a.prof`, `brain-2b.prof`).
    """
    section = Section("2. maximum sustained turns/s, one brain worker, instant model")
    instant = await drain(
        infra,
        purpose="max-instant",
        conversations=config.conversations,
        per_conversation=config.per_conversation,
        log_dir=log_dir,
        timeout_s=config.timeout_s,
        read_ops=True,
        profile=_profile_path(profile_dir, "2a"),
        what_if=what_if,
    )
    _max_rate_rows(section, "2a", "in-process instant engine", instant, config)
    model = procs.fake_model(0, API_KEY, log_dir).start().wait_ready()
    try:
        http = await drain(
            infra,
            purpose="max-http",
            conversations=config.http_conversations,
            per_conversation=config.http_per_conversation,
            log_dir=log_dir,
            timeout_s=config.timeout_s,
            model=model,
            read_ops=True,
            profile=_profile_path(profile_dir, "2b"),
            what_if=what_if,
        )
    finally:
        model.stop()
    _max_rate_rows(section, "2b", "openai engine → fake model over HTTP, 0 ms", http, config)
    if profile_dir is not None:
        section.note(f"brains ran under cProfile (slower): stats in {profile_dir}/brain-2*.prof")
    return section


def _profile_path(profile_dir: Path | None, key: str) -> Path | None:
    if profile_dir is None:
        return None
    return profile_dir / f"brain-{key}.prof"


def _max_rate_rows(
    section: Section, key: str, label: str, result: Drain, config: MaxRateConfig
) -> None:
    rate = steady_rate(result.reply_ms)
    section.add(
        Row(
            key,
            f"max turns/s, 1 worker, {label}",
            f"≥ {config.target_per_s:g}/s",
            f"{rate:.0f}/s",
            rate >= config.target_per_s,
        )
    )
    times = sorted(result.reply_ms)
    overall = (len(times) - 1) / ((times[-1] - times[0]) / 1000) if len(times) > 1 else 0.0
    section.note(
        f"{key}: {result.published} events pre-published; {len(result.replies)} replies"
        f" ({result.unique_replies} distinct reply_ids; rates count distinct ones)"
        f"{'' if result.finished else ' TIMED OUT'};"
        f" steady (10th→90th pct reply) {rate:.0f}/s, first→last reply {overall:.0f}/s"
    )
    if result.cpu is not None:
        section.note(f"{key}: {result.cpu.describe()}")
    section.note(f"{key}: {result.log_summary}; {result.lock_waits()}")


async def run_slow_model(
    infra: Infra, config: SlowModelConfig, log_dir: Path, what_if: list[str] | None = None
) -> Section:
    """Benchmark 3: 1-second model, 500 conversations; brain worker vs one-at-a-time."""
    section = Section(
        f"3. {config.model_latency_ms} ms model, {config.conversations} concurrent conversations"
    )
    model = procs.fake_model(config.model_latency_ms, API_KEY, log_dir).start().wait_ready()
    try:
        result = await drain(
            infra,
            purpose="slow-model",
            conversations=config.conversations,
            per_conversation=config.per_conversation,
            log_dir=log_dir,
            timeout_s=config.timeout_s,
            model=model,
            read_ops=True,
            what_if=what_if,
        )
        base = await baseline.run(
            infra,
            model_url=model.url + "/v1",
            api_key=API_KEY,
            conversations=config.conversations,
            per_conversation=config.per_conversation,
            duration_s=config.baseline_s,
        )
    finally:
        model.stop()
    rate = _slow_rate(section, result)
    ratio = rate / base.rate if base.rate > 0 else float("inf")
    section.add(
        Row(
            "3a",
            f"turns/s, 1 worker, {config.model_latency_ms} ms model, {config.conversations} convs",
            f"≥ {config.target_per_s:g}/s",
            f"{rate:.0f}/s",
            rate >= config.target_per_s,
        ),
        Row(
            "3b",
            "same load, one-at-a-time consumer (baseline)",
            "(reference)",
            f"{base.rate:.2f}/s",
            None,
        ),
        Row(
            "3c",
            "brain worker / baseline",
            f"≥ {config.target_ratio:g}x",
            f"{ratio:.0f}x",
            ratio >= config.target_ratio,
        ),
    )
    section.note(
        f"baseline: aiokafka consumer, one record at a time through the same TurnRunner/"
        f"TurnProcessor, commit after each: {base.turns} turns in {base.elapsed_s:.1f} s;"
        f" time per record (turn incl. 1 s model) {summary_ms(base.turn_ms)}"
    )
    if result.cpu is not None:
        section.note(f"brain worker run: {result.cpu.describe()}")
    section.note(f"brain worker run: {result.log_summary}; {result.lock_waits()}")
    return section


def _slow_rate(section: Section, result: Drain) -> float:
    """Turns/s from the first model call to the last reply, with concurrency evidence."""
    starts = result.ops_step("llm_start")
    ends = {e["message_id"]: e for e in result.ops_step("llm_end")}
    replies = sorted(result.reply_ms)
    if not starts or not replies:
        return 0.0
    first_call_ms = min(float(e["_ts"]) for e in starts)
    rate = len(replies) / ((replies[-1] - first_call_ms) / 1000)
    intervals = []
    for start in starts:
        end = ends.get(start["message_id"])
        if end is not None:
            intervals.append((occurred_s(start), occurred_s(end)))
    model_ms = [e["duration_ms"] for e in ends.values() if e.get("duration_ms") is not None]
    ideal = len(replies) / max(1, peak_overlap(intervals))
    section.note(
        f"{result.published} events pre-published; {len(replies)} replies"
        f" ({result.unique_replies} distinct){'' if result.finished else ' TIMED OUT'};"
        f" first model call → last reply {(replies[-1] - first_call_ms) / 1000:.2f} s"
    )
    section.note(
        f"peak concurrent model calls {peak_overlap(intervals)} (ideal waves: {ideal:.1f});"
        f" model time per call {summary_ms(model_ms)}"
    )
    lag = [
        (float(r.timestamp) / 1000 - occurred_s(ends[mid]))
        for r in result.replies
        if (mid := json.loads(r.value)["in_reply_to"]) in ends
    ]
    section.note(
        f"llm_end → reply on topic: p50 {percentile(lag, 50) * 1000:.1f} ms,"
        f" p99 {percentile(lag, 99) * 1000:.1f} ms"
    )
    return rate
