"""Real Kafka and Redis for tests: reuse the ones named in the environment, or start the
project's own (deploy/local scripts) on test ports and stop them afterwards.

`TEST_REDIS_CLUSTER=1` runs the session against a Redis Cluster (3 masters, 1 replica each,
`redis.sh` with `REDIS_CLUSTER=1` on TEST_REDIS_CLUSTER_PORT..+5) instead of one node: every
client the tests build goes through `make_redis`, which picks the cluster client by the URL."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_KAFKA_PORT = int(os.environ.get("TEST_KAFKA_PORT", "29092"))
TEST_REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "26379"))
TEST_REDIS_CLUSTER = os.environ.get("TEST_REDIS_CLUSTER", "") == "1"
TEST_REDIS_CLUSTER_PORT = int(os.environ.get("TEST_REDIS_CLUSTER_PORT", "27300"))
CLUSTER_SCRIPT = "redis.sh cluster"
"""How `Infra.started` names a cluster started by `redis.sh` in cluster mode."""


def cluster_url(first_port: int, host: str = "127.0.0.1") -> str:
    """The `redis+cluster://` URL of a local cluster on `first_port`..+5 (three seeds)."""
    return "redis+cluster://" + ",".join(f"{host}:{first_port + i}" for i in range(3))


@dataclass
class Infra:
    kafka_bootstrap_servers: str
    redis_url: str
    started: list[str]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _script_env() -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_PORT": str(TEST_KAFKA_PORT),
        "REDIS_PORT": str(TEST_REDIS_PORT),
        "SWITCHBOARD_DATA_DIR": str(REPO_ROOT / ".data" / "test"),
        # Reuse the jars `make run` fetched, if any.
        "KAFKA_LIBS": os.environ.get("KAFKA_LIBS", str(REPO_ROOT / ".data" / "kafka-libs")),
    }


def _run(script: str, action: str) -> None:
    env = _script_env()
    if script == CLUSTER_SCRIPT:
        script = "redis.sh"
        env.update(REDIS_CLUSTER="1", REDIS_PORT=str(TEST_REDIS_CLUSTER_PORT))
    subprocess.run(
        [str(REPO_ROOT / "deploy" / "local" / script), action],
        env=env,
        check=True,
        timeout=600,
    )


def provision() -> Infra:
    """Kafka and Redis for this test session. Never skips: it starts them when missing."""
    started: list[str] = []
    try:
        return _provision(started)
    except BaseException:
        teardown(Infra("", "", started))
        raise


def _provision(started: list[str]) -> Infra:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not kafka:
        if not port_open(TEST_KAFKA_PORT):
            _run("kafka.sh", "start")
            started.append("kafka.sh")
        kafka = f"127.0.0.1:{TEST_KAFKA_PORT}"
    redis = os.environ.get("REDIS_URL")
    if not redis and TEST_REDIS_CLUSTER:
        # `redis.sh start` is idempotent and waits until the cluster is whole.
        if not port_open(TEST_REDIS_CLUSTER_PORT):
            started.append(CLUSTER_SCRIPT)
        _run(CLUSTER_SCRIPT, "start")
        redis = cluster_url(TEST_REDIS_CLUSTER_PORT)
    if not redis:
        if not port_open(TEST_REDIS_PORT):
            _run("redis.sh", "start")
            started.append("redis.sh")
        redis = f"redis://127.0.0.1:{TEST_REDIS_PORT}/0"
    return Infra(kafka, redis, started)


def teardown(infra: Infra) -> None:
    """Stop only what `provision` started."""
    for script in reversed(infra.started):
        _run(script, "stop")
