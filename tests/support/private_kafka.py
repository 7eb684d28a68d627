"""A Kafka broker of one test's own, for tests that stop and start it (an outage).

The session's shared broker serves every other test at the same time, so an outage test
must never touch it. This one runs from the same jars (`deploy/local/kafka.sh`) on its own
port and data directory. Ports stay below 32768 so a restarted broker is never beaten to its
port by a client socket from the ephemeral range.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.support.infra import REPO_ROOT


class PrivateKafka:
    """Start, stop (the outage) and start again a single-node broker on `port`."""

    def __init__(self, port: int, name: str) -> None:
        self.port = port
        self.data_dir = REPO_ROOT / ".data" / f"test-{name}"
        self.bootstrap = f"127.0.0.1:{port}"

    def _run(self, action: str) -> None:
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.port + 1),
            "SWITCHBOARD_DATA_DIR": str(self.data_dir),
            "KAFKA_LIBS": os.environ.get("KAFKA_LIBS", str(REPO_ROOT / ".data" / "kafka-libs")),
        }
        subprocess.run(
            [str(REPO_ROOT / "deploy" / "local" / "kafka.sh"), action],
            env=env,
            check=True,
            timeout=300,
        )

    def start(self) -> PrivateKafka:
        self._run("start")
        return self

    def stop(self) -> None:
        self._run("stop")

    def destroy(self) -> None:
        """Stop and remove its data (a fresh broker next time)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
