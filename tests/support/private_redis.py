"""A Redis server owned by one test, on its own port and data directory, that the test may stop
and start at will. The shared test Redis (tests/support/infra.py) must never be restarted:
other engineers' tests run against it at the same time.

`load_delay_us` makes Redis spend that long per key when it loads its data file on start, and
events are processed during the load, so clients get `LOADING` (redis-py `BusyLoadingError`)
for a predictable window: add `ballast` keys to choose its length.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from tests.support.infra import REPO_ROOT, port_open

PRIVATE_REDIS_PORT = int(os.environ.get("TEST_PRIVATE_REDIS_PORT", "26479"))


class PrivateRedis:
    """`redis-server` on 127.0.0.1:`port` with its data under `.data/private-redis-<port>/`."""

    def __init__(self, port: int = PRIVATE_REDIS_PORT, load_delay_us: int = 0) -> None:
        self.port = port
        self.load_delay_us = load_delay_us
        self.data_dir = REPO_ROOT / ".data" / f"private-redis-{port}"
        self.pidfile = self.data_dir / "redis.pid"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client that reports every failure at once (redis-py retries by default, which
        would hide the restart window from a probe)."""
        return redis.Redis(
            port=self.port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )

    def fresh(self) -> PrivateRedis:
        """Start from an empty data directory (stops a leftover of an earlier run first)."""
        self.stop()
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken by a Redis that is not ours")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        return self

    def start(self, wait_loaded: bool = True, timeout_s: float = 60.0) -> None:
        """Start the server; with `wait_loaded`, return once it answers PING (data loaded)."""
        subprocess.run(
            [
                "redis-server",
                *("--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "yes"),
                *("--daemonize", "yes", "--dir", str(self.data_dir)),
                *("--pidfile", str(self.pidfile), "--logfile", str(self.data_dir / "redis.log")),
                # RDB saved at shutdown (a save point is configured) and loaded at start, like a
                # production restart; no AOF, so the loading window depends on the ballast only.
                *("--save", "3600 1", "--appendonly", "no"),
                *("--key-load-delay", str(self.load_delay_us)),
                *("--loading-process-events-interval-bytes", "1024"),
            ],
            check=True,
            timeout=30,
        )
        deadline = time.monotonic() + timeout_s
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"private Redis did not open port {self.port}")
            time.sleep(0.05)
        if wait_loaded:
            self.wait_loaded(deadline - time.monotonic())

    def wait_loaded(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while True:
                try:
                    client.ping()
                    return
                except (BusyLoadingError, RedisConnectionError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def add_ballast(self, keys: int) -> None:
        """Keys that make the next start load for about `keys * load_delay_us`."""
        with self.client() as client, client.pipeline(transaction=False) as pipe:
            for n in range(keys):
                pipe.set(f"ballast:{n}", "x")
            pipe.execute()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (Redis saves its data file, then exits) and wait until it is gone."""
        if not self.pidfile.exists():
            return
        pid = int(self.pidfile.read_text().strip() or 0)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pidfile.unlink(missing_ok=True)
            return
        deadline = time.monotonic() + timeout_s
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)

    def log_tail(self, lines: int = 20) -> str:
        path: Path = self.data_dir / "redis.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
