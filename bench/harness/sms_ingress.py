"""SMS benchmark 1: signed Twilio webhooks per second into ONE ingress process.

Every request is a valid inbound-message webhook as Twilio posts it (the form of
`services/tools/simulate.py`, a distinct `MessageSid` and `From` number each) with a correct
`X-Twilio-Signature` over `PUBLIC_BASE_URL` + path. Ingress answers 200 only after Kafka
acknowledged the `InboundMessage` (acks=all), so a 200 means "durably on the inbound topic".

Bodies and signatures are built before the clock starts; one HTTP client in the bench process
then keeps `concurrency` requests in flight (closed loop). Afterwards the inbound topic is
counted per level and read back, so the rate counts only messages that arrived.

Two load generators: `aiohttp` (a dependency of `twilio`) and `httpx.AsyncClient`. On this
machine httpx's client saturates a core at a few hundred requests/s (its connection pool
costs more per request the more requests are in flight), below what one ingress serves, so
its rows measure the client; the aiohttp rows measure ingress. Both are reported so the
difference stays visible.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import httpx
from aiokafka import ConsumerRecord

from bench.harness import procs
from bench.harness.infra import Infra, create_topics, drop_namespace, new_namespace
from bench.harness.kafka_io import TopicCounter, read_records
from bench.harness.report import Section
from bench.harness.sms_common import phone_number, render_grid, service_env
from bench.harness.stats import percentile, summary_ms
from services.channels.sms.twilio import (
    DEV_ACCOUNT_SID,
    INBOUND_PATH,
    SIGNATURE_HEADER,
    TWILIO_TEST_FROM,
    TwilioSignatures,
)
from tests.support.processes import free_port

AUTH_TOKEN = "bench-twilio-auth-token"  # a bench-only token for a local process
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class IngressConfig:
    """Levels as (client, concurrency, requests), in order, and an unmeasured warm-up."""

    levels: tuple[tuple[str, int, int], ...] = (
        ("aiohttp", 1, 500),
        ("aiohttp", 16, 5000),
        ("aiohttp", 64, 5000),
        ("httpx", 1, 500),
        ("httpx", 16, 2000),
        ("httpx", 64, 2000),
    )
    warmup: int = 1000
    timeout_s: float = 15.0


@dataclass(frozen=True)
class Webhook:
    """One signed inbound-message webhook, ready to post."""

    message_sid: str
    body: bytes
    signature: str


@dataclass
class Level:
    """What one concurrency level measured."""

    client: str
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    wall_s: float = 0.0
    arrived: int = 0
    """InboundMessages the inbound topic gained during this level (end-offset delta)."""
    cpu: procs.CpuMeter | None = None
    ingress_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.ingress_cpu_s / self.requests * 1000 if self.requests else float("nan")


class WebhookFactory:
    """Builds signed webhooks with a running index (distinct sid and sender each)."""

    def __init__(self, public_base_url: str, tag: str) -> None:
        self._url = f"{public_base_url}{INBOUND_PATH}"
        self._signatures = TwilioSignatures(AUTH_TOKEN)
        self._tag = tag
        self._next = 0

    def make(self, count: int) -> list[Webhook]:
        hooks = [self._one(self._next + i) for i in range(count)]
        self._next += count
        return hooks

    def _one(self, index: int) -> Webhook:
        sid = f"SM{self._tag}{index:024x}"[:34]
        form = [
            ("ToCountry", "US"),
            ("SmsMessageSid", sid),
            ("NumMedia", "0"),
            ("SmsSid", sid),
            ("SmsStatus", "received"),
            ("Body", f"Hi, what are your opening hours on Saturday? (message {index})"),
            ("To", TWILIO_TEST_FROM),
            ("NumSegments", "1"),
            ("MessageSid", sid),
            ("AccountSid", DEV_ACCOUNT_SID),
            ("From", phone_number(index)),
            ("ApiVersion", "2010-04-01"),
        ]
        signature = self._signatures.sign(self._url, form)
        return Webhook(sid, urlencode(form).encode(), signature)


Post = Callable[[str, bytes, dict[str, str]], Awaitable[int]]
"""Post a body to a URL with headers; returns the HTTP status (0: no answer)."""


@asynccontextmanager
async def http_client(kind: str, timeout_s: float) -> AsyncIterator[Post]:
    """A `Post` backed by one pooled `aiohttp` session or `httpx.AsyncClient`."""
    if kind == "aiohttp":
        connector = aiohttp.TCPConnector(limit=256)
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def post_aiohttp(url: str, body: bytes, headers: dict[str, str]) -> int:
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        return response.status
                except (aiohttp.ClientError, TimeoutError):
                    return 0

            yield post_aiohttp
        return
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:

        async def post_httpx(url: str, body: bytes, headers: dict[str, str]) -> int:
            try:
                return (await client.post(url, content=body, headers=headers)).status_code
            except httpx.HTTPError:
                return 0

        yield post_httpx


async def post_all(post: Post, url: str, hooks: list[Webhook], level: Level) -> None:
    """Post `hooks` with `level.concurrency` in flight; record latency and status of each."""
    pending = iter(hooks)

    async def worker() -> None:
        for hook in pending:
            headers = {"content-type": FORM_CONTENT_TYPE, SIGNATURE_HEADER: hook.signature}
            started = time.perf_counter()
            status = await post(url, hook.body, headers)
            level.latencies_ms.append((time.perf_counter() - started) * 1000)
            level.statuses[status] = level.statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(level.concurrency)))
    level.wall_s = time.perf_counter() - started


async def run(infra: Infra, config: IngressConfig, log_dir: Path) -> tuple[str, Section]:
    """Benchmark 1: start one ingress, post every level, verify the inbound topic."""
    namespace = new_namespace("sms-ingress")
    topics = await create_topics(infra, namespace)
    port = free_port()
    public_base_url = f"http://127.0.0.1:{port}"
    env = service_env(infra, namespace) | {
        "PUBLIC_BASE_URL": public_base_url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
    }
    argv = [procs.SWITCHBOARD, "ingress", "--port", str(port)]
    ingress = procs.Child("ingress", argv, env, log_dir, port)
    counter = TopicCounter(infra.kafka_bootstrap_servers, topics.inbound)
    factory = WebhookFactory(public_base_url, namespace.rsplit("-", 1)[1])
    sent: list[str] = []
    levels: list[Level] = []
    try:
        ingress.start().wait_ready()
        await counter.start()
        pids = {
            "ingress": ingress.pid,
            "kafka": procs.listening_pid(infra.kafka_port),
            "redis": procs.listening_pid(infra.redis_port),
            "bench client": os.getpid(),
        }
        url = ingress.url + INBOUND_PATH
        for kind in dict.fromkeys(kind for kind, _, _ in config.levels):
            async with http_client(kind, config.timeout_s) as post:
                warm = factory.make(config.warmup)  # connections, Kafka JIT; unmeasured
                await post_all(post, url, warm, Level(kind, concurrency=16))
                sent += [hook.message_sid for hook in warm]
                for _, concurrency, requests in (lv for lv in config.levels if lv[0] == kind):
                    hooks = factory.make(requests)
                    level = Level(kind, concurrency, cpu=procs.CpuMeter(pids))
                    await _measure(post, url, hooks, level, counter, ingress.pid)
                    sent += [hook.message_sid for hook in hooks]
                    levels.append(level)
        await counter.stop()
        ingress.stop()
        records = await read_records(infra.kafka_bootstrap_servers, topics.inbound)
    finally:
        ingress.stop()
        await drop_namespace(infra, namespace)
    return _table(levels), _section(levels, records, sent, ingress)


async def _measure(
    post: Post,
    url: str,
    hooks: list[Webhook],
    level: Level,
    counter: TopicCounter,
    ingress_pid: int,
) -> None:
    """One level: post everything, then count what reached the inbound topic."""
    assert level.cpu is not None
    before = await counter.count()
    level.cpu.mark_start()
    cpu_before = procs.cpu_seconds(ingress_pid)
    await post_all(post, url, hooks, level)
    level.ingress_cpu_s = procs.cpu_seconds(ingress_pid) - cpu_before
    level.cpu.mark_end()
    level.arrived = await counter.count() - before


def _table(levels: list[Level]) -> str:
    header = (
        "client",
        "concurrency",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "ingress CPU ms/req",
        "non-200",
        "on topic",
    )
    rows = [
        (
            level.client,
            str(level.concurrency),
            str(level.requests),
            f"{level.rate:.0f}",
            f"{percentile(level.latencies_ms, 50):.2f}",
            f"{percentile(level.latencies_ms, 99):.2f}",
            f"{level.cpu_ms_per_request:.2f}",
            str(level.requests - level.ok),
            str(level.arrived),
        )
        for level in levels
    ]
    return render_grid(header, rows)


def _section(
    levels: list[Level], records: list[ConsumerRecord], sent: list[str], ingress: procs.Child
) -> Section:
    """Evidence: arrivals match the 200s, every sid arrived once, CPU per process."""
    section = Section("1. SMS ingress: signed webhooks → InboundMessage acked by Kafka")
    values = [json.loads(record.value) for record in records]
    sids = [value["provider_message_id"] for value in values]
    missing = set(sent) - set(sids)
    section.note(
        f"inbound topic after the run: {len(records)} records for {len(sent)} webhooks sent"
        f" (incl. {len(sent) - sum(lv.requests for lv in levels)} warm-up);"
        f" {len(set(sids))} distinct MessageSids, {len(sids) - len(set(sids))} duplicates,"
        f" {len(missing)} missing; channels {sorted({v['channel'] for v in values})}"
    )
    for level in levels:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(level.statuses.items()))
        verdict = "OK" if level.arrived == level.ok else "MISMATCH"
        section.note(
            f"{level.client} c={level.concurrency}: HTTP statuses {{{codes}}}; 200s {level.ok}"
            f" vs records added to the inbound topic {level.arrived} ({verdict}); latency"
            f" {summary_ms(level.latencies_ms)}"
        )
        if level.cpu is not None:
            section.note(f"{level.client} c={level.concurrency}: {level.cpu.describe()}")
    section.note(procs.describe_log(ingress))
    return section
