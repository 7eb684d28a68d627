"""A 3-broker Kafka cluster of one test module's own, for tests that kill a broker or move
partition leaders under load.

It runs from the same jars and script as every other broker (`deploy/local/kafka.sh` with
`KAFKA_BROKERS=3`): three combined broker+controller nodes, node i on `port + 2(i-1)`. The
session's shared broker is never touched. Ports stay below 32768 so a restarted node is never
beaten to its port by a client socket from the ephemeral range.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from tests.support.infra import REPO_ROOT

KAFKA_LIBS = Path(os.environ.get("KAFKA_LIBS", str(REPO_ROOT / ".data" / "kafka-libs")))


@dataclass(frozen=True)
class PartitionState:
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class KafkaCluster:
    """Start, stop, SIGKILL and restart the nodes of a local KRaft cluster; inspect and move
    its partitions with Kafka's own admin tools."""

    def __init__(self, port: int, name: str, brokers: int = 3) -> None:
        self.base_port = port
        self.brokers = brokers
        self.data_dir = REPO_ROOT / ".data" / f"test-{name}"

    def port(self, node: int) -> int:
        """Client port of node `node` (1-based), as kafka.sh assigns it."""
        return self.base_port + 2 * (node - 1)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port(i)}" for i in range(1, self.brokers + 1))

    def _run(self, *args: str) -> None:
        env = {
            **os.environ,
            "KAFKA_BROKERS": str(self.brokers),
            "KAFKA_PORT": str(self.base_port),
            "SWITCHBOARD_DATA_DIR": str(self.data_dir),
            "KAFKA_LIBS": str(KAFKA_LIBS),
        }
        env.pop("KAFKA_CONTROLLER_PORT", None)  # each node's is the port after its own
        subprocess.run(
            [str(REPO_ROOT / "deploy" / "local" / "kafka.sh"), *args],
            env=env,
            check=True,
            timeout=300,
        )

    def start(self) -> KafkaCluster:
        self._run("start")
        return self

    def stop(self) -> None:
        self._run("stop")

    def destroy(self) -> None:
        """Kill every node and remove the data (a fresh cluster next time).

        SIGKILL, not a controlled stop: the data goes anyway, and the last nodes of a
        stopping cluster wait up to 30 s for a controller quorum that is already gone."""
        for node in range(1, self.brokers + 1):
            if (self.log_path(node).parent / "kafka.pid").exists():
                self.kill(node)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self, node: int) -> None:
        """SIGKILL one node: no controlled shutdown, nothing flushed."""
        self._run("kill", str(node))

    def start_node(self, node: int) -> None:
        self._run("start-one", str(node))

    def stop_node(self, node: int) -> None:
        """SIGTERM one node: a controlled shutdown (its leaderships move first)."""
        self._run("stop-one", str(node))

    def log_path(self, node: int) -> Path:
        return self.data_dir / f"kafka-{self.base_port}-{node}" / "kafka.log"

    # -- inspection ----------------------------------------------------------------------

    async def partitions(self, topics: list[str]) -> dict[tuple[str, int], PartitionState]:
        """Leader, replicas and in-sync replicas of every partition of `topics`."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            described = await admin.describe_topics(topics)
        finally:
            await admin.close()
        return {
            (topic["topic"], part["partition"]): PartitionState(
                part["leader"], tuple(part["replicas"]), tuple(part["isr"])
            )
            for topic in described
            for part in topic["partitions"]
        }

    async def wait_until(
        self,
        topics: list[str],
        check: Callable[[dict[tuple[str, int], PartitionState]], bool],
        timeout_s: float = 60.0,
        what: str = "",
    ) -> dict[tuple[str, int], PartitionState]:
        """Poll the partitions of `topics` until `check(states)` is true; return them."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                states = await self.partitions(topics)
                if states and check(states):
                    return states
            except Exception:  # a node may be down or electing: poll again
                states = {}
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"cluster never reached: {what}; last: {states}")
            await asyncio.sleep(0.5)

    # -- Kafka's admin tools (kafka-tools jar, fetched by kafka.sh) -------------------------

    def tool(self, main_class: str, *args: str) -> str:
        """Run one of Kafka's command-line tools against this cluster; return its output."""
        done = subprocess.run(
            [
                "java",
                # A short-lived client: quick start-up matters more than peak speed (each
                # call otherwise costs seconds of JIT on a busy machine).
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                f"{KAFKA_LIBS}/*",
                main_class,
                "--bootstrap-server",
                self.bootstrap,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{main_class} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def reassign(self, replicas: dict[tuple[str, int], list[int]], work_dir: Path) -> None:
        """Start giving partitions new replica lists (first = preferred leader).

        Returns once Kafka accepted the plan; `wait_until` on `partitions` tells when the
        new lists are in place (immediate when only the order changes: no data moves)."""
        plan = {
            "version": 1,
            "partitions": [
                {"topic": topic, "partition": partition, "replicas": ids}
                for (topic, partition), ids in replicas.items()
            ],
        }
        path = work_dir / "reassignment.json"
        path.write_text(json.dumps(plan))
        self.tool(
            "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
            "--reassignment-json-file",
            str(path),
            "--execute",
        )

    def elect_preferred_leaders(self, partitions: list[tuple[str, int]], work_dir: Path) -> str:
        """Make each partition's first replica its leader (Kafka's preferred election)."""
        path = work_dir / "election.json"
        path.write_text(
            json.dumps({"partitions": [{"topic": t, "partition": p} for t, p in partitions]})
        )
        return self.tool(
            "org.apache.kafka.tools.LeaderElectionCommand",
            "--election-type",
            "PREFERRED",
            "--path-to-json-file",
            str(path),
        )
