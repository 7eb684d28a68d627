"""The four layouts of the cluster benchmark, all running at once on bench-only ports.

- one Kafka broker (replication 1) or a 3-broker KRaft cluster (`KAFKA_BROKERS=3`: the
  services' automatic rule gives replication 3 and `min.insync.replicas` 2);
- one Redis server or a Redis Cluster of 3 masters with one replica each (`REDIS_CLUSTER=1`,
  a `redis+cluster://` URL).

They are started together and measured in rounds, one layout after the other, so a noisy
neighbour spreads over all of them and the ratios within a round are fair. The ports are
below the ephemeral range and apart from the other benchmarks' (28092 / 25379) and the tests'.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from bench.harness.infra import Infra
from tests.support.infra import REPO_ROOT

DATA_DIR = REPO_ROOT / ".data" / "bench-cluster"
KAFKA_SINGLE_PORT = 28112
KAFKA_CLUSTER_PORT = 28120  # brokers on 28120, 28122, 28124 (controllers one above each)
REDIS_SINGLE_PORT = 25400
REDIS_CLUSTER_PORT = 25410  # nodes on 25410-25415


@dataclass(frozen=True)
class Layout:
    """One combination of Kafka and Redis to measure the services on."""

    name: str
    kafka_brokers: int
    redis_cluster: bool

    @property
    def infra(self) -> Infra:
        if self.kafka_brokers == 1:
            kafka = f"127.0.0.1:{KAFKA_SINGLE_PORT}"
        else:
            ports = [KAFKA_CLUSTER_PORT + 2 * i for i in range(self.kafka_brokers)]
            kafka = ",".join(f"127.0.0.1:{port}" for port in ports)
        if self.redis_cluster:
            nodes = ",".join(f"127.0.0.1:{REDIS_CLUSTER_PORT + i}" for i in range(3))
            redis = f"redis+cluster://{nodes}"
        else:
            redis = f"redis://127.0.0.1:{REDIS_SINGLE_PORT}/0"
        return Infra(kafka, redis)


LAYOUTS = (
    Layout("1 broker, Redis node", 1, False),
    Layout("3 brokers (RF 3, min ISR 2), Redis node", 3, False),
    Layout("1 broker, Redis Cluster (3+3)", 1, True),
    Layout("3 brokers, Redis Cluster", 3, True),
)


def _script(script: str, action: str, **env: str) -> None:
    subprocess.run(
        [str(REPO_ROOT / "deploy" / "local" / script), action],
        env={
            **os.environ,
            "SWITCHBOARD_DATA_DIR": str(DATA_DIR),
            "KAFKA_LIBS": os.environ.get("KAFKA_LIBS", str(REPO_ROOT / ".data" / "kafka-libs")),
            **env,
        },
        check=True,
        timeout=600,
    )


_SERVERS = (
    (
        "kafka.sh",
        {"KAFKA_PORT": str(KAFKA_SINGLE_PORT), "KAFKA_CONTROLLER_PORT": str(KAFKA_SINGLE_PORT + 1)},
    ),
    ("kafka.sh", {"KAFKA_PORT": str(KAFKA_CLUSTER_PORT), "KAFKA_BROKERS": "3"}),
    ("redis.sh", {"REDIS_PORT": str(REDIS_SINGLE_PORT)}),
    ("redis.sh", {"REDIS_PORT": str(REDIS_CLUSTER_PORT), "REDIS_CLUSTER": "1"}),
)


def start_all() -> None:
    """Start every server of every layout (idempotent: running ones are left as they are)."""
    try:
        for script, env in _SERVERS:
            _script(script, "start", **env)
    except BaseException:
        stop_all()
        raise


def stop_all() -> None:
    """Stop every server `start_all` starts; their data stays in `DATA_DIR`."""
    for script, env in reversed(_SERVERS):
        try:
            _script(script, "stop", **env)
        except subprocess.CalledProcessError as exc:
            print(f"  (could not stop {script} {env}: exit {exc.returncode})")
