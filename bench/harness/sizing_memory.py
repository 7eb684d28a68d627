"""Redis memory and brain RSS per 1,000 active conversations, at growing depth.

One namespace, one brain worker process (the OpenAI engine against the fake model at 0 ms,
answering with `sizing_load.ANSWER_TEMPLATE`), one set of conversations that grows deeper in
stages: all conversations get their turns up to depth 1, then up to 5, 20, 40. After each
stage, once every turn is answered and committed, the Redis keys of the namespace are counted
and sized (`sizing_redis.census`) and the worker's RSS is read. Staging one population, rather
than a fresh one per depth, is how conversations age in production, and it costs
max(depths) turns per conversation instead of their sum.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis

from bench.harness import procs
from bench.harness.infra import PARTITIONS, Infra, create_topics, drop_namespace, new_namespace
from bench.harness.kafka_io import TopicCounter, committed, prepublish
from bench.harness.sizing_group import process_memory, wait_stable
from bench.harness.sizing_load import ANSWER_TEMPLATE, conversations, turns
from bench.harness.sizing_redis import Census, census, info_fields
from bench.harness.throughput import API_KEY, brain_env
from shared.contracts import Channel


@dataclass(frozen=True)
class MemoryConfig:
    """Population, the depths measured (cumulative turns per conversation), SMS share."""

    conversations: int = 1000
    depths: tuple[int, ...] = (1, 5, 20, 40)
    sms_share: float = 0.2
    stage_timeout_s: float = 600.0


@dataclass
class Stage:
    """The state after every conversation reached `depth` turns."""

    depth: int
    census: Census
    rss: dict[str, int]
    wall_s: float
    published: int
    replies: int
    finished: bool


@dataclass
class MemoryResult:
    """Every stage of one run, the idle RSS, and which conversations are SMS."""

    config: MemoryConfig
    idle_rss: dict[str, int]
    baseline: dict[str, int]
    sms_conversations: set[str]
    stages: list[Stage] = field(default_factory=list)
    log_summary: str = ""


async def run(infra: Infra, config: MemoryConfig, log_dir: Path) -> MemoryResult:
    """Grow `config.conversations` conversations through `config.depths`, measuring each."""
    namespace = new_namespace("sizing-memory")
    topics = await create_topics(infra, namespace)
    bootstrap = infra.kafka_bootstrap_servers
    redis = Redis.from_url(infra.redis_url)
    model = procs.fake_model(0, API_KEY, log_dir).start().wait_ready()
    brain: procs.Child | None = None
    counters = [TopicCounter(bootstrap, topics.replies(c)) for c in (Channel.CHAT, Channel.SMS)]
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(
                f"{model.url}/_fake/config", json={"reply_template": ANSWER_TEMPLATE}
            )
            answer.raise_for_status()
        env = brain_env(infra, namespace, model.url + "/v1")
        brain = procs.bench_brain(env, log_dir, "configured").start().wait_ready()
        await wait_stable(bootstrap, f"{namespace}.brain", 1, PARTITIONS)
        await asyncio.sleep(2.0)  # let start-up allocations settle before the idle reading
        convs = conversations(config.conversations, config.sms_share)
        result = MemoryResult(
            config,
            process_memory(brain.pid),
            await info_fields(redis),
            {c.conversation_id for c in convs if c.channel is Channel.SMS},
        )
        for counter in counters:
            await counter.start()
        done = published = 0
        for depth in config.depths:
            stage_began = time.monotonic()
            published += await prepublish(bootstrap, topics.inbound, turns(convs, done, depth))
            replies, finished = await _wait_answered(
                bootstrap, redis, namespace, counters, brain, published, config.stage_timeout_s
            )
            wall_s = time.monotonic() - stage_began
            snapshot = await census(redis, namespace, result.baseline)
            result.stages.append(
                Stage(
                    depth,
                    snapshot,
                    process_memory(brain.pid),
                    wall_s,
                    published,
                    replies,
                    finished,
                )
            )
            print(f"  depth {depth}: {replies} replies in {wall_s:.0f} s", flush=True)
            done = depth
        result.log_summary = procs.describe_log(brain)
        return result
    finally:
        for counter in counters:
            await counter.stop()
        if brain is not None:
            brain.stop()
        model.stop()
        await redis.aclose()
        await drop_namespace(infra, namespace)


async def _wait_answered(
    bootstrap: str,
    redis: Redis,
    namespace: str,
    counters: list[TopicCounter],
    brain: procs.Child,
    published: int,
    timeout_s: float,
) -> tuple[int, bool]:
    """Until every event has a reply, the group has committed them all and no conversation
    lock is held (a summary is folded after the turn's reply, under its lock)."""
    deadline = time.monotonic() + timeout_s
    group_id = f"{namespace}.brain"
    replies = 0
    while time.monotonic() < deadline:
        if brain.process is not None and brain.process.poll() is not None:
            raise RuntimeError(f"brain exited:\n{brain.log_tail()}")
        replies = sum([await counter.count() for counter in counters])
        if replies >= published and await committed(bootstrap, group_id) >= published:
            locks = redis.scan_iter(match=f"{namespace}:lock:*", count=5000)
            held = [k async for k in locks if not k.endswith((b":fence", b":wake"))]
            if not held:
                return replies, True
        await asyncio.sleep(0.5)
    return replies, False
