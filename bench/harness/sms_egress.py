"""SMS benchmark 2: sends/s of ONE egress process against the fake Twilio at 50 ms latency.

For each run, `replies` valid SMS `Reply` events (round-robin over `conversations` distinct
E.164 numbers, fenced in order per conversation, keyed by conversation id as the brain
publishes them) go to the SMS reply topic of a fresh namespace first; then one
`switchboard egress` process starts and delivers them to `switchboard fake twilio`, which
runs in its own process and answers each send after `--latency-ms`.

The rate comes from the fake's own records: the arrival time of every accepted send,
first → last, so egress start-up and group join are excluded. The run ends when egress's
consumer group has committed every reply. Afterwards the fake must hold exactly `replies`
messages with pairwise distinct bodies, each the body of one published reply (no loss, no
duplicate SMS), and the dead-letter topic must be empty.

Status callbacks are switched off (`EGRESS_SMS_STATUS_CALLBACKS=false`): no ingress runs
here to receive them, and the fake would otherwise spend CPU posting to nobody.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from bench.harness import procs
from bench.harness.infra import Infra, create_topics, drop_namespace, new_namespace
from bench.harness.kafka_io import TopicCounter, committed, prepublish
from bench.harness.report import Section
from bench.harness.sms_common import phone_number, render_grid, service_env
from bench.harness.stats import peak_overlap, steady_rate
from services.channels.sms.twilio import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN
from shared.contracts import Channel, Reply
from shared.topics import Topics
from shared.tracing import new_trace
from tests.support.processes import free_port

UNLIMITED_PER_S = 1_000_000.0
"""`EGRESS_SMS_SENDS_PER_SECOND` for runs that must not be bound by the limiter."""


@dataclass(frozen=True)
class EgressRun:
    """One egress configuration and the load it gets."""

    label: str
    replies: int
    conversations: int
    batch_max_records: int = 64
    sends_per_second: float = UNLIMITED_PER_S
    baseline: bool = False
    """The row the others are compared with."""


@dataclass(frozen=True)
class EgressConfig:
    """Fake Twilio latency and the runs, in order."""

    latency_ms: int = 50
    runs: tuple[EgressRun, ...] = (
        EgressRun("sequential baseline", 200, 200, batch_max_records=1, baseline=True),
        EgressRun("default batch", 3000, 500),
        EgressRun("default batch, limiter 20/s", 300, 100, sends_per_second=20),
        EgressRun("default batch, limiter 50/s", 400, 100, sends_per_second=50),
    )
    timeout_floor_s: float = 60.0


@dataclass
class Outcome:
    """What one run measured, from the fake's records and Kafka."""

    run: EgressRun
    expected_bodies: set[str]
    attempts: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    finished: bool = False
    wall_s: float = 0.0
    cpu: procs.CpuMeter | None = None
    egress_cpu_s: float = 0.0
    """CPU seconds egress used from its first send until every reply was committed."""
    redis_calls: Counter[str] = field(default_factory=Counter)
    """Redis commands (`INFO commandstats`) while egress ran, incl. those inside scripts."""
    log_summary: str = ""

    @property
    def send_times(self) -> list[float]:
        """Arrival time at the fake (epoch seconds) of every accepted send, sorted."""
        return sorted(a["time"] for a in self.attempts if a.get("outcome") == "accepted")

    @property
    def rate(self) -> float:
        """Sends/s from the first accepted send to the last."""
        times = self.send_times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    @property
    def steady(self) -> float:
        return steady_rate([t * 1000 for t in self.send_times])

    @property
    def bodies(self) -> list[str]:
        return [str(m.get("body")) for m in self.messages]

    @property
    def duplicates(self) -> int:
        return len(self.bodies) - len(set(self.bodies))

    @property
    def exact(self) -> bool:
        """Exactly one SMS per published reply, nothing else."""
        return len(self.messages) == self.run.replies and set(self.bodies) == self.expected_bodies

    @property
    def cpu_ms_per_send(self) -> float:
        sent = len(self.send_times)
        return self.egress_cpu_s / sent * 1000 if sent else float("nan")

    def redis_per_send(self, command: str) -> float:
        sent = len(self.send_times)
        return self.redis_calls[command] / sent if sent else float("nan")

    def peak_in_flight(self, latency_ms: int) -> int:
        """Most sends the fake was holding at one instant (each held `latency_ms`)."""
        return peak_overlap([(t, t + latency_ms / 1000) for t in self.send_times])


def sms_replies(run: EgressRun, tag: str) -> Iterator[Reply]:
    """Round-robin replies (reply k of every conversation, then k+1), fenced in order."""
    per_conversation = -(-run.replies // run.conversations)
    produced = 0
    for seq in range(per_conversation):
        for conv in range(run.conversations):
            if produced == run.replies:
                return
            produced += 1
            yield Reply(
                reply_id=uuid.uuid4().hex,
                in_reply_to=f"{tag}-c{conv:05d}-m{seq}",
                conversation_id=f"{tag}-c{conv:05d}",
                channel=Channel.SMS,
                address=phone_number(conv),
                text=f"We open at 9 am on Saturdays. (reply {seq} to conversation {conv}, {tag})",
                fence=seq + 1,
                trace=new_trace(),
            )


def fake_twilio(latency_ms: int, log_dir: Path) -> procs.Child:
    """`switchboard fake twilio` in its own process (default dev credentials)."""
    port = free_port()
    argv = [procs.SWITCHBOARD, "fake", "twilio", "--port", str(port)]
    argv += ["--latency-ms", str(latency_ms)]
    return procs.Child("fake-twilio", argv, {}, log_dir, port, ready_path="/_fake/messages")


def egress_env(infra: Infra, namespace: str, run: EgressRun, fake: procs.Child) -> dict[str, str]:
    return service_env(infra, namespace) | {
        "TWILIO_API_BASE": fake.url,
        "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEV_AUTH_TOKEN,
        "EGRESS_BATCH_MAX_RECORDS": str(run.batch_max_records),
        "EGRESS_SMS_SENDS_PER_SECOND": f"{run.sends_per_second:g}",
        "EGRESS_SMS_STATUS_CALLBACKS": "false",
    }


async def run(infra: Infra, config: EgressConfig, log_dir: Path) -> tuple[str, Section]:
    """Benchmark 2: every run against one fake Twilio process (reset between runs)."""
    fake = fake_twilio(config.latency_ms, log_dir)
    outcomes: list[Outcome] = []
    try:
        fake.start().wait_ready()
        async with httpx.AsyncClient(base_url=fake.url, timeout=30.0) as control:
            for egress_run in config.runs:
                print(f"  egress: {egress_run.label} ...", flush=True)
                outcomes.append(await _one_run(infra, config, egress_run, fake, control, log_dir))
    finally:
        fake.stop()
    return _table(outcomes, config), _section(outcomes, config, fake)


async def _one_run(
    infra: Infra,
    config: EgressConfig,
    egress_run: EgressRun,
    fake: procs.Child,
    control: httpx.AsyncClient,
    log_dir: Path,
) -> Outcome:
    """Pre-publish, start egress, wait until every reply is committed, read the fake."""
    namespace = new_namespace("sms-egress")
    topics = await create_topics(infra, namespace)
    bootstrap = infra.kafka_bootstrap_servers
    egress: procs.Child | None = None
    try:
        (await control.post("/_fake/reset")).raise_for_status()
        replies = list(sms_replies(egress_run, namespace))
        outcome = Outcome(egress_run, {reply.text for reply in replies})
        await prepublish(bootstrap, topics.replies(Channel.SMS), replies)
        redis_before = await redis_commands(infra.redis_url)
        egress = procs.service("egress", egress_env(infra, namespace, egress_run, fake), log_dir)
        egress.start().wait_ready()
        outcome.cpu = procs.CpuMeter(
            {
                "egress": egress.pid,
                "fake-twilio": fake.pid,
                "kafka": procs.listening_pid(infra.kafka_port),
                "redis": procs.listening_pid(infra.redis_port),
            }
        )
        await _watch(outcome, egress, topics, bootstrap, _timeout_s(config, egress_run))
        outcome.redis_calls = await redis_commands(infra.redis_url) - redis_before
        egress.stop()
        outcome.log_summary = procs.describe_log(egress)
        outcome.attempts = (await control.get("/_fake/attempts")).json()
        outcome.messages = (await control.get("/_fake/messages")).json()
        outcome.dead_letters = await _count(bootstrap, topics.dlq_replies)
        return outcome
    finally:
        if egress is not None:
            egress.stop()
        await drop_namespace(infra, namespace)


def _timeout_s(config: EgressConfig, egress_run: EgressRun) -> float:
    """Generous: three times the slowest plausible duration, at least the floor."""
    slowest_per_s = min(egress_run.sends_per_second, 1000 / config.latency_ms)
    return max(config.timeout_floor_s, 3 * egress_run.replies / slowest_per_s)


async def _watch(
    outcome: Outcome, egress: procs.Child, topics: Topics, bootstrap: str, timeout_s: float
) -> None:
    """Wait until egress's group committed every reply (each sent, deduped or parked).

    The CPU window opens at egress's first ops event (its first send) and closes when all
    replies are committed.
    """
    assert outcome.cpu is not None
    ops = TopicCounter(bootstrap, topics.ops)
    await ops.start()
    group = f"{topics.namespace}.egress.{Channel.SMS.value}"
    started = time.monotonic()
    opened = False
    cpu_at_first_send = 0.0
    try:
        while time.monotonic() - started < timeout_s:
            if egress.process is not None and egress.process.poll() is not None:
                raise RuntimeError(f"egress exited:\n{egress.log_tail()}")
            if not opened and await ops.count() > 0:
                opened = True
                outcome.cpu.mark_start()
                cpu_at_first_send = procs.cpu_seconds(egress.pid)
            if opened and await committed(bootstrap, group) >= outcome.run.replies:
                outcome.finished = True
                outcome.egress_cpu_s = procs.cpu_seconds(egress.pid) - cpu_at_first_send
                break
            await asyncio.sleep(0.2)
    finally:
        await ops.stop()
        if not opened:
            outcome.cpu.mark_start()
        outcome.cpu.mark_end()
        outcome.wall_s = time.monotonic() - started


async def redis_commands(url: str) -> Counter[str]:
    """Calls per Redis command so far (`INFO commandstats`), e.g. `evalsha`, `time`."""
    redis = Redis.from_url(url)
    try:
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    return Counter(
        {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    )


async def _count(bootstrap: str, topic: str) -> int:
    counter = TopicCounter(bootstrap, topic)
    await counter.start()
    try:
        return await counter.count()
    finally:
        await counter.stop()


def _limit_label(per_s: float) -> str:
    return "off" if per_s >= UNLIMITED_PER_S else f"{per_s:g}/s"


def _table(outcomes: list[Outcome], config: EgressConfig) -> str:
    base = next((o.rate for o in outcomes if o.run.baseline), 0.0)
    header = (
        "run",
        "batch max",
        "rate limit",
        "replies",
        "conversations",
        "sends/s",
        "x baseline",
        "peak in flight",
        "egress CPU ms/SMS",
        "limiter calls/SMS",
        "SMS at fake",
        "duplicates",
    )
    rows = [
        (
            o.run.label,
            str(o.run.batch_max_records),
            _limit_label(o.run.sends_per_second),
            str(o.run.replies),
            str(o.run.conversations),
            f"{o.rate:.1f}",
            f"{o.rate / base:.1f}x" if base else "n/a",
            str(o.peak_in_flight(config.latency_ms)),
            f"{o.cpu_ms_per_send:.2f}",
            f"{o.redis_per_send('time'):.1f}",
            str(len(o.messages)),
            str(o.duplicates),
        )
        for o in outcomes
    ]
    return render_grid(header, rows)


def _section(outcomes: list[Outcome], config: EgressConfig, fake: procs.Child) -> Section:
    section = Section(f"2. SMS egress → fake Twilio ({config.latency_ms} ms per send)")
    for o in outcomes:
        label = o.run.label
        outcomes_at_fake = Counter(str(a.get("outcome")) for a in o.attempts)
        section.note(
            f"{label}: {o.run.replies} replies published; egress"
            f" {'committed all' if o.finished else 'TIMED OUT'} after {o.wall_s:.1f} s"
            f" (incl. start-up and group join); fake send attempts {dict(outcomes_at_fake)};"
            f" {len(o.messages)} SMS, {len(set(o.bodies))} distinct bodies,"
            f" {'exactly the published ones' if o.exact else 'NOT the published set'};"
            f" dead letters {o.dead_letters}"
        )
        section.note(
            f"{label}: first→last send {o.rate:.1f}/s, steady (10th→90th pct send) {o.steady:.1f}/s"
        )
        if o.cpu is not None:
            section.note(f"{label}: {o.cpu.describe()}")
        plain = sum(n for name, n in o.redis_calls.items() if name != "evalsha")
        section.note(
            f"{label}: Redis per SMS sent: {o.redis_per_send('evalsha'):.1f} EVALSHA (ledger"
            f" claim + record, limiter), of which {o.redis_per_send('time'):.1f} limiter runs"
            f" (its script's TIME), {plain / max(len(o.send_times), 1):.1f} commands in all"
            f" besides EVALSHA (incl. those run inside scripts)"
        )
        section.note(f"{label}: {o.log_summary}")
    section.note(procs.describe_log(fake))
    return section
