"""Channels as plug-ins, end to end through the real brain (a process, offline engine).

- "echo" (tests/support/echo_channel/) exists only in the tests: ingress and egress run in
  this process with `channels=(*CHANNELS, ECHO)`, nothing else edited.
- "kiosk" (tests/support/standalone_channel.py) runs as its own process on the SDK's
  `ChannelService`, importing only the SDK and the contracts.

Both share one deployment (topic namespace and Redis prefix) for this module.
"""

from __future__ import annotations

import ast
import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from services.brain.sms_text import count_segments, is_gsm7
from services.channels.registry import CHANNELS
from services.channels.sdk.service import conversation_for
from services.common.redis import make_redis
from services.egress.config import EgressSettings
from services.egress.main import create_app as create_egress
from services.ingress.config import IngressSettings
from services.ingress.main import create_app as create_ingress
from shared.topics import Topics
from tests.support import standalone_channel
from tests.support.echo_channel.channel import ECHO
from tests.support.echo_channel.inbound import MESSAGES_PATH
from tests.support.echo_channel.outbound import Delivered, EchoOutbox
from tests.support.echo_channel.profile import MAX_CHARS, NAME, echo_profile
from tests.support.infra import REPO_ROOT, Infra
from tests.support.inprocess import serving
from tests.support.kafka import eventually, read_topic
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.e2e]

REPLY_TIMEOUT_S = 90.0
MARKDOWN = ("**", "__", "`", "](", "# ")
PLANS = "How much do your plans cost?"  # the offline engine's longest answer, with **bold**


@dataclass(frozen=True)
class Deployment:
    infra: Infra
    namespace: str

    @property
    def topics(self) -> Topics:
        return Topics(self.namespace)


@pytest.fixture(scope="module")
def deployment(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A fresh namespace with a real brain process (offline engine) consuming it."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "REDIS_URL": infra.redis_url,
        "SWITCHBOARD_TOPIC_NAMESPACE": namespace,
        "SWITCHBOARD_REDIS_PREFIX": namespace,
        "SWITCHBOARD_TOPIC_PARTITIONS": "3",
        "BRAIN_ENGINE": "offline",
        "LOG_LEVEL": "INFO",
    }
    brain = ServiceProcess("brain", env, tmp_path_factory.mktemp("plugin-channels"))
    brain.start()
    try:
        yield Deployment(infra, namespace)
    finally:
        brain.stop()


@dataclass(frozen=True)
class EchoStack:
    ingress_url: str
    outbox: EchoOutbox
    deployment: Deployment

    async def post(self, client: httpx.AsyncClient, body: Any) -> httpx.Response:
        return await client.post(f"{self.ingress_url}{MESSAGES_PATH}", json=body)

    async def delivered_until(self, user: str, message_id: str) -> list[Delivered]:
        """`user`'s outbox once the answer to `message_id` is in it (or at the timeout)."""

        async def answered() -> list[Delivered] | None:
            entries = await self.outbox.read(user)
            return entries if any(e.in_reply_to == message_id for e in entries) else None

        entries = await eventually(answered, timeout_s=REPLY_TIMEOUT_S, interval_s=0.2)
        assert entries, f"{message_id} of {user} was never answered"
        return list(entries)


@pytest_asyncio.fixture(scope="module")
async def echo(deployment: Deployment) -> AsyncIterator[EchoStack]:
    """Ingress and egress in this process, with the echo channel beside the built-in ones."""
    infra, namespace = deployment.infra, deployment.namespace
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "redis_url": infra.redis_url,
        "topic_namespace": namespace,
        "redis_prefix": namespace,
        "topic_partitions": 3,
    }
    channels = (*CHANNELS, ECHO)
    ingress = create_ingress(
        IngressSettings(**common, instance_id=f"ingress-{namespace}"), channels=channels
    )
    egress = create_egress(
        EgressSettings(**common, instance_id=f"egress-{namespace}"), channels=channels
    )
    redis = make_redis(infra.redis_url)
    try:
        async with serving(egress), serving(ingress) as ingress_url:
            yield EchoStack(ingress_url, EchoOutbox(redis, namespace), deployment)
    finally:
        await redis.aclose()


def new_user() -> str:
    return f"u{uuid.uuid4().hex[:12]}"


def assert_plain_and_short(text: str, max_chars: int) -> None:
    assert text, "an empty answer"
    assert len(text) <= max_chars, (len(text), text)
    assert not any(mark in text for mark in MARKDOWN), text


@pytest.mark.asyncio
async def test_a_test_only_channel_is_answered_in_order_with_memory_and_its_shaping(
    echo: EchoStack,
) -> None:
    user = new_user()
    messages = [("m1", "Hi, my name is Ada"), ("m2", PLANS), ("m3", "What is my name?")]
    async with httpx.AsyncClient(timeout=30.0) as client:
        # Sent back to back: the brain answers a conversation's messages one by one, in order.
        accepted = [
            await echo.post(client, {"user": user, "id": i, "text": t}) for i, t in messages
        ]
    assert [r.status_code for r in accepted] == [202, 202, 202], [r.text for r in accepted]
    conversations = {r.json()["conversation_id"] for r in accepted}
    assert len(conversations) == 1

    delivered = await echo.delivered_until(user, "m3")
    assert [d.in_reply_to for d in delivered] == ["m1", "m2", "m3"]
    assert {d.conversation_id for d in delivered} == conversations
    assert len({d.reply_id for d in delivered}) == 3
    for reply in delivered:
        assert_plain_and_short(reply.text, MAX_CHARS)
    greeting, plans, recall = (d.text for d in delivered)
    assert "Ada" in greeting
    # The knowledge answer is longer than the echo profile allows and has **bold** plan names:
    # the brain stripped the markup and cut it at a sentence (the last one did not fit).
    assert plans.startswith("We offer three plans: Basic 100 Mbps"), plans
    assert plans.endswith(".") and "no setup fees" not in plans, plans
    # The second message's turn saw the first: memory is the conversation's, on any channel.
    assert "Ada" in recall and "echo" in recall, recall


@pytest.mark.asyncio
async def test_a_retried_post_and_a_redelivered_reply_are_answered_once(echo: EchoStack) -> None:
    user = new_user()
    first = {"user": user, "id": "d1", "text": "When are you open?"}
    async with httpx.AsyncClient(timeout=30.0) as client:
        # The client did not see the first 202 and posts again: same id, one message.
        for _ in range(2):
            assert (await echo.post(client, first)).status_code == 202
        answered = await echo.delivered_until(user, "d1")
        assert [d.in_reply_to for d in answered] == ["d1"]

        # Egress sees the reply again (a redelivery after a crash before its commit).
        topic = echo.deployment.topics.replies(NAME)
        records = await read_topic(
            echo.deployment.infra.kafka_bootstrap_servers,
            topic,
            lambda events: any(e["in_reply_to"] == f"{user}:d1" for e in events),
        )
        # The brain may publish the answer again for the copy (it re-sends what it recorded,
        # in case the first publish was lost): always under the same reply id.
        copies = [e for e in records if e["in_reply_to"] == f"{user}:d1"]
        assert len({e["reply_id"] for e in copies}) == 1, copies
        reply = copies[0]
        await publish_again(echo.deployment.infra.kafka_bootstrap_servers, topic, reply)

        # A later message of the same conversation is answered after anything queued before
        # it (one partition per conversation, in order), so once it is in, no copy is coming.
        later = {"user": user, "id": "d2", "text": "thanks"}
        assert (await echo.post(client, later)).status_code == 202
    delivered = await echo.delivered_until(user, "d2")
    assert [d.in_reply_to for d in delivered] == ["d1", "d2"]
    assert delivered[0].reply_id == reply["reply_id"]
    # The brain answered the retried post once: however many copies, one reply id.
    records = await read_topic(
        echo.deployment.infra.kafka_bootstrap_servers,
        topic,
        lambda events: any(e["in_reply_to"] == f"{user}:d2" for e in events),
    )
    assert len({e["reply_id"] for e in records if e["in_reply_to"] == f"{user}:d1"}) == 1


async def publish_again(bootstrap: str, topic: str, event: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        key = event["conversation_id"].encode()
        await producer.send_and_wait(topic, json.dumps(event).encode(), key=key)
    finally:
        await producer.stop()


BAD_BODIES: list[Any] = [
    {"user": "u", "id": "x1"},  # no text
    {"user": "u", "id": "x2", "text": "   "},  # blank
    {"user": "u", "id": "x3", "text": "hi", "admin": True},  # unknown field
    {"user": "u", "id": 7, "text": "hi"},  # wrong type
    {"user": "u/../v", "id": "x4", "text": "hi"},  # not a user id
    {"user": "u", "id": "x5", "text": "a" * 2001},  # too long
    ["u", "x6", "hi"],  # not an object
]


@pytest.mark.asyncio
async def test_bad_input_is_a_4xx_and_publishes_nothing(echo: EchoStack) -> None:
    user = new_user()
    async with httpx.AsyncClient(timeout=30.0) as client:
        for body in BAD_BODIES:
            if isinstance(body, dict) and body.get("user") == "u":
                body = {**body, "user": user}
            response = await echo.post(client, body)
            assert response.status_code in (400, 422), (body, response.status_code)
        not_json = await client.post(
            f"{echo.ingress_url}{MESSAGES_PATH}",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert not_json.status_code in (400, 422)
        good = {"user": user, "id": "ok", "text": "hello"}
        assert (await echo.post(client, good)).status_code == 202

    inbound = await read_topic(
        echo.deployment.infra.kafka_bootstrap_servers,
        echo.deployment.topics.inbound,
        lambda events: any(e["provider_message_id"] == f"{user}:ok" for e in events),
    )
    assert [e["provider_message_id"] for e in inbound if e["address"] == user] == [f"{user}:ok"]
    [published] = [e for e in inbound if e["address"] == user]
    assert published["channel"] == NAME
    assert published["profile"] == echo_profile().model_dump(mode="json")
    delivered = await echo.delivered_until(user, "ok")
    assert [d.in_reply_to for d in delivered] == ["ok"]


@pytest.mark.asyncio
async def test_a_channel_in_its_own_process_is_answered_in_order_once_each(
    deployment: Deployment,
) -> None:
    user = f"kiosk-{uuid.uuid4().hex[:8]}"
    texts = ["Hi, my name is Ada", PLANS, "What is my name?"]
    command = [
        sys.executable,
        "-m",
        "tests.support.standalone_channel",
        *("--bootstrap", deployment.infra.kafka_bootstrap_servers),
        *("--namespace", deployment.namespace),
        *("--user", user),
        *("--run", "r"),
        *(arg for text in texts for arg in ("--text", text)),
        "--retry",  # every message published twice: still one answer each
        *("--timeout", str(REPLY_TIMEOUT_S)),
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), REPLY_TIMEOUT_S + 60)
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    replies = [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]

    assert [r["in_reply_to"] for r in replies] == ["r-1", "r-2", "r-3"], replies
    assert len({r["reply_id"] for r in replies}) == 3
    profile = standalone_channel.kiosk_profile()
    assert {r["conversation_id"] for r in replies} == {conversation_for("kiosk", profile, user)}
    assert {(r["channel"], r["address"]) for r in replies} == {("kiosk", user)}
    for reply in replies:
        assert_plain_and_short(reply["text"], profile.max_chars)
        assert is_gsm7(reply["text"]), reply["text"]
        assert count_segments(reply["text"]).segments <= standalone_channel.SEGMENTS
    greeting, plans, recall = (r["text"] for r in replies)
    assert "Ada" in greeting
    assert plans.startswith("We offer three plans: Basic 100 Mbps"), plans
    assert "Ada" in recall and "kiosk" in recall, recall


def test_the_standalone_channel_imports_only_the_sdk_and_the_contracts() -> None:
    source = Path(standalone_channel.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            assert node.module is not None
            imported.add(node.module)
    project = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert "services.channels.sdk.service" in project
    outside = {
        name
        for name in project
        if not (name.startswith("services.channels.sdk.") or name.split(".")[0] == "shared")
    }
    assert not outside, f"the standalone channel imports {sorted(outside)}"
