"""Child processes of a benchmark (services, the fake model, a bench brain) and CPU use.

Every process is started here and stopped by its own pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.infra import REPO_ROOT
from tests.support.processes import free_port

PYTHON = sys.executable
SWITCHBOARD = str(Path(PYTHON).parent / "switchboard")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def listening_pid(port: int) -> int | None:
    """The pid listening on 127.0.0.1:`port` (Kafka, Redis), if `ss` can tell."""
    try:
        out = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    marker = "pid="
    if marker not in out:
        return None
    return int(out.split(marker, 1)[1].split(",", 1)[0])


def jvm_gc(pid: int | None) -> tuple[int, float] | None:
    """(GC pauses so far, seconds spent in them) of a JVM (the Kafka broker), via `jstat`."""
    if pid is None:
        return None
    try:
        out = subprocess.run(
            ["jstat", "-gc", str(pid)], capture_output=True, text=True, timeout=10
        ).stdout.split("\n")
        row = dict(zip(out[0].split(), out[1].split(), strict=True))
        return int(row["YGC"]) + int(row["FGC"]), float(row["YGCT"]) + float(row["FGCT"])
    except (OSError, subprocess.TimeoutExpired, IndexError, KeyError, ValueError):
        return None


def describe_gc(before: tuple[int, float] | None, after: tuple[int, float] | None) -> str:
    """Kafka's stop-the-world GC over a window, when `jstat` could tell."""
    if before is None or after is None:
        return "kafka GC: jstat not available"
    pauses, seconds = after[0] - before[0], after[1] - before[1]
    mean = seconds / pauses * 1000 if pauses else 0.0
    return (
        f"kafka JVM GC in the window: {pauses} pauses,"
        f" {seconds * 1000:.0f} ms total (mean {mean:.0f} ms)"
    )


class Child:
    """One process with its own port and log file, ready when `ready_path` answers 200."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_dir: Path,
        port: int,
        ready_path: str = "/readyz",
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.ready_path = ready_path
        self.log_path = log_dir / f"{name}-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env={**os.environ, **self.env, "LOG_FORMAT": "json"},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        return self

    def wait_ready(self, timeout_s: float = 90.0) -> Child:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout_s}s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid) if self.process else 0.0

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM (lets a profiled brain write its profile), SIGKILL after `grace_s`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def service(name: str, env: dict[str, str], log_dir: Path) -> Child:
    """`switchboard ingress|brain|egress` on a free port."""
    port = free_port()
    return Child(name, [SWITCHBOARD, name, "--port", str(port)], env, log_dir, port)


def fake_model(latency_ms: int, api_key: str, log_dir: Path) -> Child:
    """`switchboard fake openai`: the OpenAI-compatible fake, in its own process."""
    port = free_port()
    argv = [SWITCHBOARD, "fake", "openai", "--port", str(port), "--latency-ms", str(latency_ms)]
    argv += ["--api-key", api_key]
    return Child("fake-openai", argv, {}, log_dir, port, ready_path="/v1/models")


def timed_fake_model(latency_ms: int, api_key: str, log_dir: Path) -> Child:
    """The fake model with server-side timings (`bench.harness.timed_fake`)."""
    port = free_port()
    argv = [PYTHON, "-m", "bench.harness.timed_fake", "--port", str(port)]
    argv += ["--latency-ms", str(latency_ms), "--api-key", api_key]
    return Child("fake-openai", argv, {}, log_dir, port, ready_path="/v1/models")


def bench_brain(
    env: dict[str, str],
    log_dir: Path,
    engine: str,
    profile: Path | None = None,
    what_if: list[str] | None = None,
) -> Child:
    """One brain worker via `bench.harness.brain_worker` (instant engine, profile, what-ifs)."""
    port = free_port()
    argv = [PYTHON, "-m", "bench.harness.brain_worker", "--port", str(port), "--engine", engine]
    if profile is not None:
        profile.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--profile", str(profile)]
    argv += what_if or []
    return Child("brain", argv, env, log_dir, port)


def log_entries(log_path: Path) -> Iterator[dict[str, Any]]:
    """The JSON entries of a service's log, in order (other lines and a missing file skipped)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def log_events(log_path: Path) -> Counter[str]:
    """How often each (event, error) pair appears in a service's JSON log."""
    counts: Counter[str] = Counter()
    for entry in log_entries(log_path):
        if entry.get("level") in ("warning", "error", "critical"):
            counts[f"{entry.get('event')}[{entry.get('error', '')}]"] += 1
    return counts


def describe_log(child: Child) -> str:
    """One line: the warnings and errors a child logged (retries, failures)."""
    counts = log_events(child.log_path)
    if not counts:
        return f"{child.name} log: no warnings or errors"
    top = ", ".join(f"{event} x{n}" for event, n in counts.most_common(4))
    return f"{child.name} log: {sum(counts.values())} warnings/errors: {top}"


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (all processes, /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS


class CpuMeter:
    """CPU seconds of a set of processes between `mark_start()` and `mark_end()`."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self._start: dict[str, float] = {}
        self._end: dict[str, float] = {}
        self._t0 = self._t1 = 0.0
        self._busy0 = self._busy1 = 0.0

    def mark_start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._busy0 = machine_busy_seconds()

    def mark_end(self) -> None:
        self._t1 = time.monotonic()
        self._end = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._busy1 = machine_busy_seconds()

    def utilisation(self) -> dict[str, float]:
        """Share of one core each process used over the window (1.0 = one full core)."""
        wall = max(self._t1 - self._t0, 1e-9)
        return {name: (self._end[name] - self._start[name]) / wall for name in self.pids}

    def describe(self, names: Iterable[str] | None = None) -> str:
        use = self.utilisation()
        chosen = list(names) if names is not None else list(use)
        parts = [f"{name} {use[name] * 100:.0f}%" for name in chosen if name in use]
        total = sum(use.values()) * 100
        capacity = (os.cpu_count() or 1) * 100
        wall = max(self._t1 - self._t0, 1e-9)
        machine = (self._busy1 - self._busy0) / wall * 100
        return (
            f"CPU (% of one core) over {wall:.1f} s: {', '.join(parts)}"
            f"; sum {total:.0f}% of the machine's {capacity}%; whole machine busy {machine:.0f}%"
            f" (other tenants ≈ {max(machine - total, 0):.0f}%)"
        )
