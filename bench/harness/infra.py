"""Kafka, Redis and machine facts for the benchmarks.

The bench reuses `KAFKA_BOOTSTRAP_SERVERS` / `REDIS_URL` when they are set. Otherwise it runs
the project's own broker and Redis (`deploy/local/kafka.sh`, `redis.sh`) on bench ports
(28092 / 25379, data in `.data/bench/`) so a concurrent `make test`, which starts and stops
its own on 29092 / 26379, cannot pull the broker away mid-run. It stops only what it started.
The ports are below 32768: one in the ephemeral range can be taken by a client socket, and
the broker then cannot bind again after a restart.
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from bench.harness.procs import listening_pid
from services.channels.registry import channel_names
from services.common.kafka import ensure_topics
from services.common.redis import make_redis
from shared.topics import Topics
from tests.support.infra import REPO_ROOT, port_open

BENCH_DATA_DIR = REPO_ROOT / ".data" / "bench"
BENCH_KAFKA_PORT = int(os.environ.get("BENCH_KAFKA_PORT", "28092"))
BENCH_REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "25379"))
PARTITIONS = int(os.environ.get("SWITCHBOARD_TOPIC_PARTITIONS", "6"))


@dataclass
class Infra:
    """Where Kafka and Redis are, and which of them this run started."""

    kafka_bootstrap_servers: str
    redis_url: str
    started: list[str] = field(default_factory=list)

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1])

    @property
    def redis_port(self) -> int:
        return int(self.redis_url.rsplit(":", 1)[1].split("/")[0])

    def server_pids(self) -> dict[str, int | None]:
        """Every broker and every listed Redis node, by role (`kafka`, `kafka-2`, ...), so a
        CPU meter counts a cluster's other members as ours, not as another tenant's."""
        kafka = [int(a.rsplit(":", 1)[1]) for a in self.kafka_bootstrap_servers.split(",")]
        nodes = self.redis_url.split("://", 1)[1].split("/")[0].rsplit("@", 1)[-1].split(",")
        redis = [int(node.rsplit(":", 1)[1]) for node in nodes]
        pids: dict[str, int | None] = {}
        for role, ports in (("kafka", kafka), ("redis", redis)):
            for index, port in enumerate(ports, 1):
                pids[role if index == 1 else f"{role}-{index}"] = listening_pid(port)
        return pids


def _script_env() -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_PORT": str(BENCH_KAFKA_PORT),
        "REDIS_PORT": str(BENCH_REDIS_PORT),
        "SWITCHBOARD_DATA_DIR": str(BENCH_DATA_DIR),
        "KAFKA_LIBS": os.environ.get("KAFKA_LIBS", str(REPO_ROOT / ".data" / "kafka-libs")),
    }


def _run_script(script: str, action: str) -> None:
    subprocess.run(
        [str(REPO_ROOT / "deploy" / "local" / script), action],
        env=_script_env(),
        check=True,
        timeout=600,
    )


def provision() -> Infra:
    """Kafka and Redis for this run: from the environment, already running, or started."""
    infra = Infra("", "")
    try:
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not kafka:
            if not port_open(BENCH_KAFKA_PORT):
                _run_script("kafka.sh", "start")
                infra.started.append("kafka.sh")
            kafka = f"127.0.0.1:{BENCH_KAFKA_PORT}"
        redis = os.environ.get("REDIS_URL")
        if not redis:
            if not port_open(BENCH_REDIS_PORT):
                _run_script("redis.sh", "start")
                infra.started.append("redis.sh")
            redis = f"redis://127.0.0.1:{BENCH_REDIS_PORT}/0"
    except BaseException:
        teardown(infra)
        raise
    infra.kafka_bootstrap_servers, infra.redis_url = kafka, redis
    return infra


def teardown(infra: Infra) -> None:
    """Stop only what `provision` started."""
    for script in reversed(infra.started):
        _run_script(script, "stop")
    infra.started.clear()


def new_namespace(purpose: str) -> str:
    """A fresh topic namespace / Redis prefix for one sub-benchmark."""
    return f"bench-{purpose}-{uuid.uuid4().hex[:8]}"


async def create_topics(infra: Infra, namespace: str, partitions: int = PARTITIONS) -> Topics:
    """Every topic of a deployment with the built-in channels under `namespace`, created up
    front, leaders elected."""
    topics = Topics(namespace)
    names = topics.all(channel_names())
    await ensure_topics(infra.kafka_bootstrap_servers, names, partitions)
    await _wait_for_leaders(infra, names)
    return topics


async def _wait_for_leaders(infra: Infra, names: list[str], timeout_s: float = 30.0) -> None:
    """New partitions answer NotLeaderForPartition for a moment; wait until all have one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            described = await admin.describe_topics(names)
            leaders = [p["leader"] for t in described for p in t.get("partitions", [])]
            if len(described) == len(names) and leaders and min(leaders) >= 0:
                return
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def drop_namespace(infra: Infra, namespace: str) -> None:
    """Delete a sub-benchmark's topics and Redis keys, so repeated runs stay small."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = [name for name in await admin.list_topics() if name.startswith(namespace)]
        if existing:
            await admin.delete_topics(existing)
    except Exception as exc:  # cleanup is best effort
        print(f"  (could not delete topics of {namespace}: {type(exc).__name__})")
    finally:
        await admin.close()
    redis = make_redis(infra.redis_url)  # a cluster URL too: SCAN visits every master
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await redis.unlink(*batch)
                batch.clear()
        if batch:
            await redis.unlink(*batch)
    finally:
        await redis.aclose()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _kafka_version() -> str:
    libs = Path(os.environ.get("KAFKA_LIBS", str(REPO_ROOT / ".data" / "kafka-libs")))
    jars = sorted(libs.glob("kafka_2.13-*.jar"))
    return jars[-1].stem.removeprefix("kafka_2.13-") if jars else "unknown"


async def machine_facts(infra: Infra) -> list[str]:
    """Cores, CPU, memory, Python, OS, broker and Redis versions, load at start."""
    redis = make_redis(infra.redis_url)
    try:
        redis_version = (await redis.info("server")).get("redis_version", "?")
    finally:
        await redis.aclose()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"cores: {os.cpu_count()} ({_cpu_model()}), memory {mem_gib:.0f} GiB,"
        f" load average at start {load}",
        f"python: {sys.version.split()[0]} ({platform.python_implementation()}),"
        f" {platform.system()} {platform.release()}",
        f"kafka: {_kafka_version()} at {infra.kafka_bootstrap_servers}; redis {redis_version}"
        f" at {infra.redis_url}; partitions per topic: {PARTITIONS}",
    ]
