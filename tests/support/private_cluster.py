"""A Redis Cluster owned by one test (3 masters, 1 replica each, started by
`deploy/local/redis.sh` in cluster mode), whose nodes the test may kill at will. The shared
test cluster of the cluster lane must never lose a node: other tests run against it.

`node_timeout_ms` is short (the default of redis.sh is 5 s) so that a killed master's replica
is promoted within a few seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.infra import REPO_ROOT, cluster_url, port_open

PRIVATE_CLUSTER_PORT = int(os.environ.get("TEST_PRIVATE_REDIS_CLUSTER_PORT", "27400"))


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One line of CLUSTER NODES, the parts a test needs."""

    node_id: str
    port: int
    master: bool
    failed: bool
    master_id: str
    slots: tuple[str, ...]


class PrivateCluster:
    """Six `redis-server` nodes on 127.0.0.1:`port`..`port`+5, data under `.data/`."""

    def __init__(self, port: int = PRIVATE_CLUSTER_PORT, node_timeout_ms: int = 2_000) -> None:
        self.port = port
        self.node_timeout_ms = node_timeout_ms
        self.data_root = REPO_ROOT / ".data" / f"private-cluster-{port}"
        self.home = self.data_root / f"redis-cluster-{port}"

    @property
    def url(self) -> str:
        return cluster_url(self.port)

    @property
    def ports(self) -> list[int]:
        return [self.port + i for i in range(6)]

    def _script(self, action: str) -> None:
        env = {
            **os.environ,
            "REDIS_CLUSTER": "1",
            "REDIS_PORT": str(self.port),
            "SWITCHBOARD_DATA_DIR": str(self.data_root),
            "REDIS_CLUSTER_NODE_TIMEOUT_MS": str(self.node_timeout_ms),
        }
        script = REPO_ROOT / "deploy" / "local" / "redis.sh"
        subprocess.run([str(script), action], env=env, check=True, timeout=120)

    def fresh(self) -> PrivateCluster:
        """Start a new, empty cluster (stops and deletes a leftover of an earlier run)."""
        self.stop()
        if any(port_open(port) for port in self.ports):
            raise RuntimeError(f"ports {self.port}..{self.port + 5} are taken by a Redis not ours")
        shutil.rmtree(self.data_root, ignore_errors=True)
        self._script("start")
        return self

    def stop(self) -> None:
        if self.home.exists():
            self._script("stop")

    def nodes(self) -> list[ClusterNodeInfo]:
        """The cluster as a live node sees it."""
        for port in self.ports:
            raw = _cli(port, "cluster", "nodes")
            if raw is not None:
                return [_parse(line) for line in raw.splitlines() if line.strip()]
        raise RuntimeError("no node of the private cluster answers")

    def master_of(self, key: str) -> ClusterNodeInfo:
        """The master serving `key`'s slot now."""
        slot = int(_cli(self.port, "cluster", "keyslot", key) or "-1")
        for node in self.nodes():
            if node.master and not node.failed and _serves(node.slots, slot):
                return node
        raise RuntimeError(f"no master serves slot {slot}")

    def key_count(self, port: int) -> int:
        """Keys one node holds now (`DBSIZE`)."""
        return int(_cli(port, "dbsize") or "0")

    def kill(self, port: int) -> None:
        """SIGKILL one node: no save, no goodbye, as a crashed machine."""
        pidfile: Path = self.home / str(port) / "redis.pid"
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while port_open(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        pidfile.unlink(missing_ok=True)

    def wait_promoted(self, killed: ClusterNodeInfo, timeout_s: float = 30.0) -> ClusterNodeInfo:
        """Wait until the killed master's replica serves its slots and the cluster is whole."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            nodes = self.nodes()
            promoted = [n for n in nodes if n.master and not n.failed and n.slots == killed.slots]
            if promoted and promoted[0].node_id != killed.node_id and self._state_ok():
                return promoted[0]
            time.sleep(0.2)
        raise RuntimeError("the killed master's replica was not promoted in time")

    def _state_ok(self) -> bool:
        live = [_cli(port, "cluster", "info") for port in self.ports]
        return all("cluster_state:ok" in info for info in live if info is not None)


def _cli(port: int, *command: str) -> str | None:
    """`redis-cli` against one node; None when it does not answer."""
    try:
        done = subprocess.run(
            ["redis-cli", "-p", str(port), *command],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0 or done.stdout.startswith(("Could not connect", "ERR")):
        return None
    return done.stdout


def _parse(line: str) -> ClusterNodeInfo:
    fields = line.split()
    flags = fields[2].split(",")
    return ClusterNodeInfo(
        node_id=fields[0],
        port=int(fields[1].split("@")[0].rsplit(":", 1)[1]),
        master="master" in flags,
        failed="fail" in flags or "fail?" in flags,
        master_id=fields[3],
        slots=tuple(fields[8:]),
    )


def _serves(slots: tuple[str, ...], slot: int) -> bool:
    for part in slots:
        if part.startswith("["):
            continue  # a slot being migrated
        low, _, high = part.partition("-")
        if int(low) <= slot <= int(high or low):
            return True
    return False
