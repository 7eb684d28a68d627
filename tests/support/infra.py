"""Real Kafka and Redis for tests: reuse the ones named in the environment, or start the
project's own (deploy/local scripts) on test ports and stop them afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_KAFKA_PORT = int(os.environ.get("TEST_KAFKA_PORT", "29092"))
TEST_REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "26379"))


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
    subprocess.run(
        [str(REPO_ROOT / "deploy" / "local" / script), action],
        env=_script_env(),
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
