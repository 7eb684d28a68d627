"""Benchmark 1: orchestration overhead per turn through the whole stack, at a steady rate.

ingress, brain and egress run as separate `switchboard` processes (as in tests/e2e), the brain
on the OpenAI engine against the fake model server (latency 0) in its own process. Chat
sessions send over WebSocket at a fixed total rate (open loop: sends are scheduled on the
clock, not after replies). Per turn:

    overhead = (send → reply frame received, client clock) - model time

where model time is the brain's own `llm_end.duration_ms` for that message (the engine call,
openai SDK and HTTP included). A stricter variant subtracts only the fake server's own time
per request (`bench.harness.timed_fake`), so the brain's model-client CPU counts as overhead.
The ops topic also gives a per-stage breakdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.harness import kafka_floor, procs
from bench.harness.infra import PARTITIONS, Infra, create_topics, drop_namespace, new_namespace
from bench.harness.kafka_io import read_records
from bench.harness.report import Row, Section
from bench.harness.stats import occurred_s, percentile, summary_ms
from tests.support.chat import ChatClient, new_session

API_KEY = "bench-key"


@dataclass(frozen=True)
class OverheadConfig:
    """Benchmark 1: sessions, total send rate, warm-up and measured durations, targets."""

    sessions: int = 50
    rate_per_s: float = 50.0
    warmup_s: float = 3.0
    duration_s: float = 20.0
    p50_target_ms: float = 3.0
    p99_target_ms: float = 10.0


@dataclass
class Turn:
    """One sent chat message and what the client saw of it."""

    client_id: str
    session_id: str
    measured: bool
    t_send: float
    wall_send: float
    t_ack: float | None = None
    t_reply: float | None = None
    wall_reply: float | None = None

    @property
    def message_id(self) -> str:
        return f"{self.session_id}:{self.client_id}"


def stack_env(infra: Infra, namespace: str, model_url: str) -> dict[str, str]:
    """Environment of every service of one isolated deployment (like tests/e2e)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "REDIS_URL": infra.redis_url,
        "SWITCHBOARD_TOPIC_NAMESPACE": namespace,
        "SWITCHBOARD_REDIS_PREFIX": namespace,
        "SWITCHBOARD_TOPIC_PARTITIONS": str(PARTITIONS),
        "BRAIN_ENGINE": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": model_url,
        "OPENAI_MODEL": "fake-model",
        "LOG_LEVEL": "INFO",
    }


class ChatLoad:
    """Many chat sessions; one reader task per socket records ack and reply arrival times."""

    def __init__(self, clients: list[ChatClient], session_ids: list[str]) -> None:
        self.clients = clients
        self.session_ids = session_ids
        self.turns: dict[str, Turn] = {}
        self._readers = [asyncio.create_task(self._read(client)) for client in clients]

    async def _read(self, client: ChatClient) -> None:
        async for raw in client.ws:
            now = time.perf_counter()
            frame = json.loads(raw)
            if frame["type"] == "ack":
                self.turns[frame["id"]].t_ack = now
            elif frame["type"] == "reply":
                turn = self.turns.get(frame["in_reply_to"])
                if turn is not None and turn.t_reply is None:
                    turn.t_reply, turn.wall_reply = now, time.time()

    async def run(self, prefix: str, rate_per_s: float, duration_s: float, measured: bool) -> int:
        """Send at `rate_per_s` for `duration_s`, round-robin over sessions; returns sends."""
        total = int(rate_per_s * duration_s)
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            index = i % len(self.clients)
            client_id = f"{prefix}{i}"
            self.turns[client_id] = Turn(
                client_id, self.session_ids[index], measured, time.perf_counter(), time.time()
            )
            await self.clients[index].send(client_id, message_text(client_id))
        return total

    async def wait_replies(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(turn.t_reply is not None for turn in self.turns.values()):
                return
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.ws.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


def message_text(client_id: str) -> str:
    """Unique per turn, so the model server's timing can be matched to it."""
    return f"{client_id}: What are your opening hours?"


def ops_by_message(records: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Lifecycle events keyed by (step, message_id) (`stage.step` for ambiguous steps)."""
    events: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        event = json.loads(record.value)
        if event.get("type") != "lifecycle" or not event.get("message_id"):
            continue
        events[(f"{event['stage']}.{event['step']}", event["message_id"])] = event
    return events


@dataclass
class Stack:
    """The fake model and the three services of one isolated deployment."""

    model: procs.Child
    services: dict[str, procs.Child]

    @property
    def ingress_url(self) -> str:
        return self.services["ingress"].url

    def pids(self, infra: Infra) -> dict[str, int | None]:
        return {
            **{name: child.pid for name, child in self.services.items()},
            "fake-model": self.model.pid,
            **infra.server_pids(),
            "bench-client": os.getpid(),
        }

    def stop(self) -> None:
        for child in self.services.values():
            child.stop()
        self.model.stop()


def start_stack(infra: Infra, namespace: str, log_dir: Path, profile_dir: Path | None) -> Stack:
    """Fake model, then ingress, egress and brain as processes; returns once all are ready."""
    model = procs.timed_fake_model(0, API_KEY, log_dir).start().wait_ready()
    env = stack_env(infra, namespace, model.url + "/v1")
    services = {name: procs.service(name, env, log_dir) for name in ("ingress", "egress")}
    if profile_dir is not None:  # the same brain, under cProfile (slower)
        profile = profile_dir / "brain-1.prof"
        services["brain"] = procs.bench_brain(env, log_dir, "configured", profile)
    else:
        services["brain"] = procs.service("brain", env, log_dir)
    stack = Stack(model, services)
    try:
        for child in services.values():
            child.start()
        for child in services.values():
            child.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack


async def open_load(base_url: str, sessions: int) -> ChatLoad:
    """`sessions` chat sessions, each with its socket open and its reader running."""
    created = [await new_session(base_url) for _ in range(sessions)]
    clients = [ChatClient(base_url, s["token"]) for s in created]
    for client in clients:
        await client.__aenter__()
    return ChatLoad(clients, [s["session_id"] for s in created])


async def run(
    infra: Infra, config: OverheadConfig, log_dir: Path, profile_dir: Path | None = None
) -> Section:
    """Start the stack, drive it, and compute overhead percentiles and a stage breakdown.

    With `profile_dir`, the brain runs under cProfile and writes `brain-1.prof` there.
    """
    section = Section("1. orchestration overhead (full stack, chat WebSocket)")
    acks, hops = await kafka_floor.measure(infra)
    section.note(
        f"Kafka floor, nothing else running: produce ack (acks=all) {summary_ms(acks)};"
        f" produce → consumer receives {summary_ms(hops)}"
    )
    namespace = new_namespace("e2e")
    topics = await create_topics(infra, namespace)
    stack = start_stack(infra, namespace, log_dir, profile_dir)
    try:
        load = await open_load(stack.ingress_url, config.sessions)
        try:
            await load.run("w", config.rate_per_s, config.warmup_s, measured=False)
            await load.wait_replies(30)  # the group has joined and every path is warm
            window = await _measured_window(load, config, stack.pids(infra), infra)
        finally:
            await load.close()
        records = await read_records(infra.kafka_bootstrap_servers, topics.ops)
        async with httpx.AsyncClient(timeout=10) as http:
            server_ms = (await http.get(stack.model.url + "/_bench/timings")).json()
    finally:
        stack.stop()
        await drop_namespace(infra, namespace)
    sent, send_window, meter, gc = window
    rows = _analyse(section, config, load, ops_by_message(records), server_ms, sent, send_window)
    _write_rows(log_dir / "overhead-turns.jsonl", rows)
    section.note(f"per-turn data: {log_dir / 'overhead-turns.jsonl'}")
    section.note(
        f"ops topic: {len(records)} events for {len(load.turns)} turns"
        f" ({len(records) / max(1, len(load.turns)):.1f} Kafka records per turn, besides the"
        " inbound event and the reply)"
    )
    section.note(meter.describe())
    section.note(gc)
    return section


async def _measured_window(
    load: ChatLoad, config: OverheadConfig, pids: dict[str, int | None], infra: Infra
) -> tuple[int, float, procs.CpuMeter, str]:
    """Send the measured turns and wait for their replies; (sent, seconds, CPU, Kafka GC)."""
    meter = procs.CpuMeter(pids)
    # jstat takes ~100 ms: run it in a thread, never on the loop that timestamps replies.
    kafka_pid = procs.listening_pid(infra.kafka_port)
    gc_before = await asyncio.to_thread(procs.jvm_gc, kafka_pid)
    meter.mark_start()
    started = time.perf_counter()
    sent = await load.run("m", config.rate_per_s, config.duration_s, measured=True)
    send_window = time.perf_counter() - started
    meter.mark_end()
    await load.wait_replies(30)
    gc_after = await asyncio.to_thread(procs.jvm_gc, kafka_pid)
    return sent, send_window, meter, procs.describe_gc(gc_before, gc_after)


def _analyse(
    section: Section,
    config: OverheadConfig,
    load: ChatLoad,
    ops: dict[tuple[str, str], dict[str, Any]],
    server_ms: dict[str, float],
    sent: int,
    send_window: float,
) -> list[dict[str, float]]:
    """Adds rows and notes to `section`; returns the per-turn numbers (ms)."""
    measured = [t for t in load.turns.values() if t.measured]
    start_of_run = min((t.t_send for t in measured), default=0.0)
    per_turn: list[dict[str, float]] = []
    answered = [t for t in measured if t.t_reply is not None]
    e2e, model, overhead, ack, strict, server = [], [], [], [], [], []
    stages: dict[str, list[float]] = {k: [] for k in ("accept", "brain_in", "brain_out", "deliver")}
    for turn in answered:
        assert turn.t_reply is not None and turn.wall_reply is not None
        end = ops.get(("brain.llm_end", turn.message_id))
        if end is None or end.get("duration_ms") is None:
            continue
        total_ms = (turn.t_reply - turn.t_send) * 1000
        e2e.append(total_ms)
        model.append(end["duration_ms"])
        overhead.append(total_ms - end["duration_ms"])
        if (spent := server_ms.get(message_text(turn.client_id))) is not None:
            server.append(spent)
            strict.append(total_ms - spent)
        if turn.t_ack is not None:
            ack.append((turn.t_ack - turn.t_send) * 1000)
        published = ops.get(("ingress.published", turn.message_id))
        start = ops.get(("brain.llm_start", turn.message_id))
        emitted = ops.get(("brain.reply_emitted", turn.message_id))
        row = {
            "sent_s": turn.t_send - start_of_run,
            "e2e": total_ms,
            "model": end["duration_ms"],
            "overhead": total_ms - end["duration_ms"],
        }
        if published and start and emitted:
            row["accept"] = (occurred_s(published) - turn.wall_send) * 1000
            row["brain_in"] = (occurred_s(start) - occurred_s(published)) * 1000
            row["brain_out"] = (occurred_s(emitted) - occurred_s(end)) * 1000
            row["deliver"] = (turn.wall_reply - occurred_s(emitted)) * 1000
            for key in stages:
                stages[key].append(row[key])
        per_turn.append(row)
    p50, p99 = percentile(overhead, 50), percentile(overhead, 99)
    what = f"overhead/turn (e2e - model), {config.rate_per_s:g}/s x {config.duration_s:g} s"
    section.add(
        Row(
            "1a",
            f"{what}, p50",
            f"≤ {config.p50_target_ms:g} ms",
            f"{p50:.2f} ms",
            p50 <= config.p50_target_ms,
        ),
        Row(
            "1b",
            f"{what}, p99",
            f"≤ {config.p99_target_ms:g} ms",
            f"{p99:.2f} ms",
            p99 <= config.p99_target_ms,
        ),
    )
    s50, s99 = percentile(strict, 50), percentile(strict, 99)
    what = "same, model client counted (e2e - fake server's own time)"
    section.add(
        Row(
            "1c",
            f"{what}, p50",
            f"≤ {config.p50_target_ms:g} ms",
            f"{s50:.2f} ms",
            s50 <= config.p50_target_ms,
        ),
        Row(
            "1d",
            f"{what}, p99",
            f"≤ {config.p99_target_ms:g} ms",
            f"{s99:.2f} ms",
            s99 <= config.p99_target_ms,
        ),
    )
    section.note(
        f"{config.sessions} sessions, {sent} turns sent in {send_window:.1f} s"
        f" ({sent / send_window:.1f}/s), {len(answered)} answered, {len(overhead)} matched to"
        f" llm_end; fake model latency 0 in its own process, brain engine = openai"
    )
    section.note(f"send → reply frame (e2e): {summary_ms(e2e)}")
    section.note(f"model time (brain llm_end.duration_ms: SDK + HTTP + fake): {summary_ms(model)}")
    section.note(f"overhead: {summary_ms(overhead)}")
    section.note(f"fake server's own time per request: {summary_ms(server)}")
    section.note(f"overhead incl. model client: {summary_ms(strict)}")
    section.note(f"send → ack frame (ingress accepted, Kafka acks=all): {summary_ms(ack)}")
    labels = {
        "accept": "client send → ingress `published` (ws, identity, Kafka ack)",
        "brain_in": "ingress `published` → brain `llm_start` (Kafka hop, fetch, lock+memory)",
        "brain_out": "brain `llm_end` → `reply_emitted` (fenced commit, reply Kafka ack)",
        "deliver": "brain `reply_emitted` → client reply frame (Kafka hop, egress, inbox, ws)",
    }
    for key, label in labels.items():
        section.note(f"stage {label}: {summary_ms(stages[key])}")
    section.note(_stalls(per_turn, 3 * p50))
    return per_turn


def _stalls(rows: list[dict[str, float]], threshold_ms: float) -> str:
    """Are slow turns spread out, or clustered (a stall that hits every turn in flight)?"""
    slow = [row for row in rows if row["overhead"] > threshold_ms]
    seconds = sorted({int(row["sent_s"]) for row in slow})
    return (
        f"turns with overhead > 3 x p50 ({threshold_ms:.1f} ms): {len(slow)}, sent in"
        f" {len(seconds)} distinct seconds of the run {seconds[:12]}"
    )


def _write_rows(path: Path, rows: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
