"""Worker restart benchmark (`bench/restart_bench.py`): how long a SIGKILLed worker that is
restarted at once takes to answer again, with dynamic and with static group membership.

One deployment per mode: ingress, brain and egress as `switchboard` processes and the fake
model (`switchboard fake openai`, latency 0) in its own process, in a fresh topic namespace
and Redis prefix. One chat session (the bench's WebSocket client, `tests.support.chat`)
talks to it. For each worker (brain, then egress) and each repetition:

1. warm-up: one chat message answered end to end;
2. SIGKILL the worker (`kill`), and at once start it again with the same argv (port
   included) and environment (`start`: just before `Popen`);
3. send one chat message right after the restart was spawned;
4. measure `kill → reply` and `start → reply` (the reply frame of that message at the
   client) and `start → ready` (the restarted process's `/readyz` first answers 200, polled
   every 20 ms). For the brain also `start → partitions` (its `brain.partitions.assigned`
   log line; wall-clock, so ± a few ms).

All instants are the bench process's `time.monotonic()` except `start → partitions`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from bench.harness import infra as infra_mod
from bench.harness import procs
from bench.harness.infra import Infra
from bench.harness.report import Section
from bench.harness.sms_common import render_grid, service_env
from tests.support.chat import ChatClient, new_session

API_KEY = "bench-key"
WORKERS = ("brain", "egress")
GOAL_S = 2.0
"""Issue 11 part 4: a restarted worker resumes its partitions within 2 s of starting."""


@dataclass(frozen=True)
class Mode:
    """One membership configuration of the workers."""

    name: str
    static: bool
    session_timeout_ms: int = 10_000


DEFAULT_MODES = (
    Mode("dynamic", static=False),
    Mode("static", static=True),
    Mode("static, session 30 s", static=True, session_timeout_ms=30_000),
)


@dataclass(frozen=True)
class RestartConfig:
    reps: int = 3
    modes: tuple[Mode, ...] = DEFAULT_MODES
    reply_timeout_s: float = 90.0


@dataclass
class Sample:
    """One kill-and-restart, in seconds."""

    kill_to_reply: float
    start_to_reply: float
    start_to_ready: float
    start_to_assigned: float | None


@dataclass
class Deployment:
    """The processes of one mode; workers are replaced on restart."""

    model: procs.Child
    children: dict[str, procs.Child]
    log_dir: Path
    restarts: int = 0

    @property
    def ingress_url(self) -> str:
        return self.children["ingress"].url

    def respawn(self, name: str) -> procs.Child:
        """A new process with the old one's argv, environment and port (not started)."""
        old = self.children[name]
        self.restarts += 1
        new = procs.Child(
            f"{name}-restart{self.restarts}", old.argv, old.env, self.log_dir, old.port
        )
        self.children[name] = new
        return new

    def stop(self) -> None:
        for child in self.children.values():
            child.stop()
        self.model.stop()


def _worker_env(base: dict[str, str], mode: Mode, name: str, namespace: str) -> dict[str, str]:
    env = dict(base)
    env["KAFKA_SESSION_TIMEOUT_MS"] = str(mode.session_timeout_ms)
    env["SWITCHBOARD_INSTANCE_ID"] = f"{name}-0"
    if mode.static:
        # Stable across restarts, as a StatefulSet pod name would be.
        env["KAFKA_GROUP_INSTANCE_ID"] = f"{namespace}-{name}-0"
    return env


def start_deployment(infra: Infra, namespace: str, mode: Mode, log_dir: Path) -> Deployment:
    model = procs.fake_model(0, API_KEY, log_dir)
    base = service_env(infra, namespace) | {
        "LOG_LEVEL": "INFO",
        "BRAIN_ENGINE": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": model.url + "/v1",
        "OPENAI_MODEL": "fake-model",
    }
    children = {
        "ingress": procs.service("ingress", base, log_dir),
        **{
            name: procs.service(name, _worker_env(base, mode, name, namespace), log_dir)
            for name in WORKERS
        },
    }
    deployment = Deployment(model, children, log_dir)
    try:
        model.start()
        for child in children.values():
            child.start()
        model.wait_ready()
        for child in children.values():
            child.wait_ready()
    except BaseException:
        deployment.stop()
        raise
    return deployment


async def _wait_ready(child: procs.Child, timeout_s: float) -> float:
    """`time.monotonic()` when the child's `/readyz` first answers 200."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(child.url + child.ready_path)).status_code == 200:
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.02)
    raise TimeoutError(f"{child.name} not ready in {timeout_s} s:\n{child.log_tail()}")


def _first_assigned_at(log_path: Path) -> float | None:
    """Wall-clock time of the brain's first `brain.partitions.assigned` with partitions."""
    for entry in procs.log_entries(log_path):
        if entry.get("event") == "brain.partitions.assigned" and entry.get("partitions"):
            return datetime.fromisoformat(entry["timestamp"]).timestamp()
    return None


async def restart_once(
    deployment: Deployment, name: str, chat: ChatClient, tag: str, config: RestartConfig
) -> Sample:
    """Warm up, SIGKILL `name`, restart it at once, time the first reply after the kill."""
    warm = await chat.ask(f"warm-{tag}", f"warm-up {tag}", timeout_s=config.reply_timeout_s)
    assert warm["text"], warm
    old = deployment.children[name]
    assert old.process is not None
    new = deployment.respawn(name)
    killed = time.monotonic()
    old.process.kill()  # SIGKILL: no LeaveGroup, no commit, nothing
    old.process.wait(10)
    wall_started = time.time()
    started = time.monotonic()
    new.start()
    message_id = f"after-kill-{tag}"
    await chat.send(message_id, f"are you back? {tag}")
    ready = asyncio.create_task(_wait_ready(new, config.reply_timeout_s))
    try:
        await chat.next_frame("reply", config.reply_timeout_s, in_reply_to=message_id)
    except TimeoutError:
        ready.cancel()
        raise TimeoutError(f"no reply after restarting {name}:\n{new.log_tail()}") from None
    replied = time.monotonic()
    ready_at = await ready
    assigned = _first_assigned_at(new.log_path) if name == "brain" else None
    return Sample(
        kill_to_reply=replied - killed,
        start_to_reply=replied - started,
        start_to_ready=ready_at - started,
        start_to_assigned=None if assigned is None else assigned - wall_started,
    )


async def run_mode(
    infra: Infra, mode: Mode, config: RestartConfig, log_dir: Path
) -> dict[str, list[Sample]]:
    namespace = infra_mod.new_namespace("restart")
    await infra_mod.create_topics(infra, namespace)
    deployment = start_deployment(infra, namespace, mode, log_dir / namespace)
    samples: dict[str, list[Sample]] = {name: [] for name in WORKERS}
    try:
        session = await new_session(deployment.ingress_url)
        async with ChatClient(deployment.ingress_url, session["token"]) as chat:
            for name in WORKERS:
                for rep in range(config.reps):
                    tag = f"{name}-{rep}"
                    sample = await restart_once(deployment, name, chat, tag, config)
                    samples[name].append(sample)
                    print(
                        f"  {mode.name:<22} {name:<6} #{rep + 1}: kill → reply"
                        f" {sample.kill_to_reply:.2f} s, start → reply"
                        f" {sample.start_to_reply:.2f} s, start → ready"
                        f" {sample.start_to_ready:.2f} s",
                        flush=True,
                    )
    finally:
        deployment.stop()
        await infra_mod.drop_namespace(infra, namespace)
    return samples


def _median_max(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    return f"{statistics.median(known):.2f} / {max(known):.2f}"


async def run(infra: Infra, config: RestartConfig, log_dir: Path) -> tuple[str, Section]:
    """Every mode and worker; the table (median / max seconds) and its evidence."""
    header = (
        "membership",
        "worker",
        "n",
        "kill → reply (s)",
        "start → reply (s)",
        "start → ready (s)",
        "start → partitions (s)",
        f"start → reply ≤ {GOAL_S:.0f} s",
    )
    rows: list[list[str]] = []
    section = Section("worker restart after SIGKILL (median / max seconds per row)")
    for mode in config.modes:
        results = await run_mode(infra, mode, config, log_dir)
        for name, samples in results.items():
            worst = max(s.start_to_reply for s in samples)
            rows.append(
                [
                    mode.name,
                    name,
                    str(len(samples)),
                    _median_max([s.kill_to_reply for s in samples]),
                    _median_max([s.start_to_reply for s in samples]),
                    _median_max([s.start_to_ready for s in samples]),
                    _median_max([s.start_to_assigned for s in samples]),
                    "PASS" if worst <= GOAL_S else "MISS",
                ]
            )
            for i, s in enumerate(samples, 1):
                assigned = (
                    ""
                    if s.start_to_assigned is None
                    else (f", start → partitions {s.start_to_assigned:.2f}")
                )
                section.note(
                    f"{mode.name}, {name} #{i}: kill → reply {s.kill_to_reply:.2f},"
                    f" start → reply {s.start_to_reply:.2f}, start → ready"
                    f" {s.start_to_ready:.2f}{assigned} s"
                )
    section.note(f"logs of every process: {log_dir}")
    return render_grid(header, rows), section
