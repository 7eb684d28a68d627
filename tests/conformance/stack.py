"""The services a conformance check runs against, all in the test's event loop.

- `serve(app)`: an ASGI app (ingress) served by uvicorn on a free port, with real HTTP and
  WebSocket framing, so requests, sockets and the brain and egress share one loop;
- `running_brain` / `running_egress`: the brain and egress apps' lifespans, as
  `services.brain.main` and `services.egress.main` wire them (real Kafka and Redis);
- `caught_up`: whether a consumer group has committed everything on a topic, which is how a
  check knows the pipeline is done without sleeping;
- `RawRecorder`: ASGI middleware for a provider fake that records every request on the
  wire (headers and raw body), for pinning outbound formats exactly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI

from services.brain.config import BrainSettings
from services.brain.main import create_app as create_brain
from services.channels.sdk.plugin import ChannelPlugin
from services.egress.config import EgressSettings
from services.egress.main import create_app as create_egress
from tests.support.brain import ScriptedEngine
from tests.support.infra import Infra


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` (lifespan included) on 127.0.0.1; yields its base URL."""
    # IPPROTO_TCP explicitly: asyncio turns Nagle's algorithm off only on sockets whose proto
    # says TCP, and accepted sockets inherit it from this one. With `socket.socket()` (proto 0)
    # each response waits ~40 ms for a delayed ACK between its header and body writes.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: uvicorn's records reach the root logger (caplog). No access log: its
    # request lines carry path secrets (VoIPBin's fetch token) and hostile query strings.
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the app did not start"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


def brain_settings(infra: Infra, namespace: str) -> BrainSettings:
    return BrainSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        topic_partitions=1,
        instance_id=f"brain-{namespace}",
    )


@contextlib.asynccontextmanager
async def running_brain(settings: BrainSettings, engine: ScriptedEngine) -> AsyncIterator[None]:
    """The brain as `services.brain.main` wires it, answering with `engine`."""
    app = create_brain(settings, engine=engine)
    async with app.router.lifespan_context(app):
        yield


@contextlib.asynccontextmanager
async def running_egress(settings: EgressSettings, plugin: ChannelPlugin) -> AsyncIterator[None]:
    """Egress as `services.egress.main` wires it, for `plugin` only."""
    app = create_egress(settings, channels=[plugin])
    async with app.router.lifespan_context(app):
        yield


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of `topic` ({} while the topic does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0 or not described["partitions"]:
        return {}
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def caught_up(bootstrap: str, group_id: str, topic: str) -> bool:
    """True when `group_id` has committed every record of `topic` (and the topic exists)."""
    ends = await end_offsets(bootstrap, topic)
    if not ends:
        return False
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    done = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic}
    return all(end == 0 or done.get(partition, -1) >= end for partition, end in ends.items())


# -- the provider side of the wire -------------------------------------------------------------


@dataclass(frozen=True)
class WireRequest:
    """One request a provider fake received, as it was on the wire."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class RawRecorder:
    """ASGI middleware in front of a provider fake: records each HTTP request (method, path,
    raw query, headers, raw body) before the fake handles it. Thread-safe: the fakes run in
    their own thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._requests: list[WireRequest] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        with self._lock:
            self._requests.append(
                WireRequest(
                    method=scope["method"],
                    path=scope["path"],
                    query=scope["query_string"].decode("latin-1"),
                    headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                    body=body,
                )
            )
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def requests(self) -> list[WireRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()


PINNED_HEADERS = ("content-type", "authorization")
"""The request headers outbound goldens pin (others, like User-Agent, carry versions)."""


def normalized(request: WireRequest, secrets: dict[str, str], prefix: str = "") -> dict[str, Any]:
    """`request` as outbound goldens pin it: method, path (without `prefix`), query pairs,
    the pinned headers (Basic credentials decoded) and the body as `form` pairs (sorted:
    the order of form fields carries no meaning) or `json`. Each value of `secrets` is
    replaced by its key (`{"<accesskey>": key}`)."""
    headers = {name: request.headers[name] for name in PINNED_HEADERS if name in request.headers}
    if headers.get("authorization", "").startswith("Basic "):
        decoded = base64.b64decode(headers["authorization"].removeprefix("Basic ")).decode()
        headers["authorization"] = f"Basic {decoded}"
    result: dict[str, Any] = {
        "method": request.method,
        "path": request.path.removeprefix(prefix),
        "query": [list(pair) for pair in parse_qsl(request.query, keep_blank_values=True)],
        "headers": headers,
    }
    content_type = headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        pairs = parse_qsl(request.body.decode(), keep_blank_values=True)
        result["form"] = [list(pair) for pair in sorted(pairs)]
    elif request.body:
        result["json"] = json.loads(request.body)
    return substitute(result, {value: key for key, value in secrets.items()})


def substitute(value: Any, replacements: dict[str, str]) -> Any:
    """`value` (JSON-like) with every occurrence of each key of `replacements` in its strings
    replaced by the key's value."""
    if isinstance(value, str):
        for old, new in replacements.items():
            if old:
                value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {substitute(k, replacements): substitute(v, replacements) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(item, replacements) for item in value]
    return value


def of_conversation(requests: Sequence[Any], conversation_id: str) -> list[Any]:
    """Engine requests of one conversation (the scripted engine records every turn)."""
    return [r for r in requests if r.conversation_id == conversation_id]
