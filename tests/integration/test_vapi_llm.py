"""VAPI's custom LLM end to end in this process: ingress with the LLM route (a test plugin
around `VapiLlm` and `VapiOutput`), the real brain with a scripted engine, and egress, on
the real Kafka and Redis.

The wire is checked on every answer: every `data:` line parses, carries `choices`, and the
stream ends with `[DONE]` (providers.md §3.5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from redis.asyncio import Redis

from services.brain.memory import ConversationMemory, MemoryLimits
from services.channels.sdk.plugin import ChannelPlugin, EgressContext, IngressContext
from services.channels.vapi.control import VapiControl
from services.channels.vapi.llm import VapiLlm
from services.channels.vapi.outbound import VapiOutput
from services.channels.vapi.profile import NAME, vapi_profile
from services.channels.vapi.settings import VapiSettings
from services.channels.vapi.store import VapiCalls
from services.common.redis import make_redis
from services.egress.config import EgressSettings
from services.ingress.config import IngressSettings
from services.ingress.main import create_app as create_ingress
from shared.contracts.inbox import StreamPart, StreamStop
from shared.topics import Topics
from tests.conformance.stack import brain_settings, running_brain, running_egress, serve
from tests.support.brain import ScriptedEngine
from tests.support.infra import Infra
from tests.support.kafka import eventually, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

KEY = "vapi-llm-test-key-4e1b7a"
PATH = "/v1/vapi/llm/chat/completions"
DOUBLED_PATH = f"{PATH}/chat/completions"
PATIENT = {"filler_after_ms": 30_000, "stream_deadline_s": 45.0}
"""No filler, no deadline on a slow machine: for checks about the answer itself."""


def vapi_plugin(settings: VapiSettings) -> ChannelPlugin:
    """The VAPI channel as a test builds it: the LLM route in ingress, VapiOutput in egress."""

    def build_inbound(ctx: IngressContext) -> VapiLlm:
        llm = VapiLlm(
            settings=settings,
            publisher=ctx.publisher_for(NAME, vapi_profile()),
            calls=VapiCalls(ctx.redis, ctx.settings.redis_prefix),
            identity=ctx.identity,
            ops=ctx.ops,
            instance_id=ctx.settings.instance_id,
        )
        ctx.inbox.on(StreamPart, llm.on_stream_part)
        ctx.inbox.on(StreamStop, llm.on_stream_stop)
        return llm

    def build_outbound(ctx: EgressContext) -> VapiOutput:
        return VapiOutput(
            calls=VapiCalls(ctx.redis, ctx.settings.redis_prefix),
            control=VapiControl(settings),
            inbox=ctx.inbox,
            ops=ctx.ops,
        )

    return ChannelPlugin(name=NAME, build_inbound=build_inbound, build_outbound=build_outbound)


@dataclass
class Pipeline:
    """The brain and egress of one namespace; ingress instances are started per test."""

    infra: Infra
    namespace: str
    engine: ScriptedEngine
    redis: Redis
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def topics(self) -> Topics:
        return Topics(self.namespace)

    async def ingress(self, **overrides: Any) -> str:
        """Start one more ingress instance (its own instance id and inbox); its base URL."""
        settings = VapiSettings(llm_key=SecretStr(KEY), **overrides)
        ingress = IngressSettings(
            kafka_bootstrap_servers=self.infra.kafka_bootstrap_servers,
            redis_url=self.infra.redis_url,
            topic_namespace=self.namespace,
            redis_prefix=self.namespace,
            topic_partitions=1,
            instance_id=f"ingress-{uuid.uuid4().hex[:8]}",
        )
        app = create_ingress(ingress, channels=[vapi_plugin(settings)])
        return await self.stack.enter_async_context(serve(app))

    async def inbound(self, until: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
        return await read_topic(
            self.infra.kafka_bootstrap_servers, self.topics.inbound, until, timeout_s=60
        )

    async def replies(self, until: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
        return await read_topic(
            self.infra.kafka_bootstrap_servers, self.topics.replies(NAME), until, timeout_s=60
        )


@pytest_asyncio.fixture(scope="module")
async def pipeline(infra: Infra) -> AsyncIterator[Pipeline]:
    """One namespace with the brain (scripted engine) and egress running for the module."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    redis = make_redis(infra.redis_url)
    engine = ScriptedEngine()
    egress = EgressSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        topic_partitions=1,
        instance_id=f"egress-{namespace}",
    )
    plugin = vapi_plugin(VapiSettings(llm_key=SecretStr(KEY)))
    async with (
        running_brain(brain_settings(infra, namespace), engine),
        running_egress(egress, plugin),
    ):
        yield Pipeline(infra, namespace, engine, redis)
    await redis.aclose()


@pytest_asyncio.fixture
async def stack(pipeline: Pipeline) -> AsyncIterator[Pipeline]:
    """The module's pipeline, with this test's ingress instances stopped after it and the
    engine reset."""
    async with pipeline.stack:
        yield pipeline
    pipeline.stack = contextlib.AsyncExitStack()
    engine = pipeline.engine
    if engine.gate is not None:
        engine.gate.set()  # whatever still waits on it finishes
    engine.answers.clear()
    engine.gate = None
    engine.chunk_delay_s = 0.0


# -- the provider side ------------------------------------------------------------------------


def new_call() -> dict[str, Any]:
    """VAPI's `call` object of an inbound phone call from a caller of this test only."""
    call_id = str(uuid.uuid4())
    number = f"+1415{random.randint(2_000_000, 9_999_999)}"  # not a secret
    return {
        "id": call_id,
        "type": "inboundPhoneCall",
        "customer": {"number": number},
        "monitor": {"controlUrl": f"http://127.0.0.1:9/{call_id}/control"},
    }


def body(call: dict[str, Any], *turns: str, stream: bool = True) -> dict[str, Any]:
    """The request VAPI sends: the whole history; `turns` alternate user / assistant and
    end with the user's latest utterance."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful agent."}]
    for index, text in enumerate(turns):
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": text})
    return {
        "model": "switchboard-brain",
        "messages": messages,
        "temperature": 0.7,
        "max_tokens": 250,
        "stream": stream,
        "call": call,
        "metadata": {},
    }


@dataclass
class Answer:
    status: int
    content_type: str
    lines: list[str]

    def chunks(self) -> list[dict[str, Any]]:
        """Every chunk, after checking the whole stream against VAPI's expectations."""
        assert self.status == 200, (self.status, self.lines)
        assert self.content_type.startswith("text/event-stream"), self.content_type
        assert self.lines, "an empty stream"
        assert all(line.startswith("data: ") for line in self.lines), self.lines
        assert self.lines[-1] == "data: [DONE]", self.lines
        chunks = [json.loads(line.removeprefix("data: ")) for line in self.lines[:-1]]
        for chunk in chunks:
            assert chunk["object"] == "chat.completion.chunk", chunk
            assert set(chunk) == {"id", "object", "created", "model", "choices"}, chunk
            [choice] = chunk["choices"]
            assert choice["index"] == 0 and isinstance(choice["delta"], dict), chunk
        assert len({c["id"] for c in chunks}) == 1
        assert {c["model"] for c in chunks} == {"switchboard-brain"}
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
        reasons = [c["choices"][0]["finish_reason"] for c in chunks]
        assert reasons == [None] * (len(chunks) - 1) + ["stop"], reasons
        return chunks

    def contents(self) -> list[str]:
        return [
            c["choices"][0]["delta"]["content"]
            for c in self.chunks()
            if "content" in c["choices"][0]["delta"]
        ]

    @property
    def text(self) -> str:
        return "".join(self.contents())


async def ask(
    url: str,
    request: dict[str, Any],
    *,
    path: str = PATH,
    key: str = KEY,
    on_line: Callable[[str], Awaitable[None]] | None = None,
) -> Answer:
    """POST a custom-LLM request and read the whole stream."""
    async with (
        httpx.AsyncClient(timeout=90.0) as client,
        client.stream(
            "POST", f"{url}{path}", json=request, headers={"authorization": f"Bearer {key}"}
        ) as response,
    ):
        lines = []
        async for line in response.aiter_lines():
            if line:
                lines.append(line)
                if on_line is not None:
                    await on_line(line)
        return Answer(response.status_code, response.headers.get("content-type", ""), lines)


def published(events: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["provider_message_id"] == message_id]


# -- checks -----------------------------------------------------------------------------------


async def test_a_turn_streams_the_brains_sentences_as_valid_sse(stack: Pipeline) -> None:
    url = await stack.ingress(**PATIENT)
    call = new_call()
    stack.engine.answers.append("Hello there. We open at nine. See you soon.")
    answer = await ask(url, body(call, "When do you open?"))

    assert answer.text == "Hello there. We open at nine. See you soon."
    assert len(answer.contents()) == 3, "one chunk per sentence, as the brain said them"
    turn = f"{call['id']}:turn:1"
    [message] = published(await stack.inbound(lambda e: bool(published(e, turn))), turn)
    assert message["channel"] == NAME and message["kind"] == "text"
    assert message["address"] == call["id"] and message["text"] == "When do you open?"
    assert message["reply"]["kind"] == "stream"
    assert message["reply"]["correlation_id"] == turn
    assert message["heard"] is None
    assert message["profile"] == vapi_profile().model_dump(mode="json")
    # The stream is released once answered: egress may send control messages again.
    assert not await VapiCalls(stack.redis, stack.namespace).streaming(call["id"])


async def test_heard_text_and_the_doubled_path(stack: Pipeline) -> None:
    url = await stack.ingress(**PATIENT)
    call = new_call()
    first = await ask(url, body(call, "Hi, I'm Ada."))
    assert first.text == "echo: Hi, I'm Ada."
    # VAPI sends back what was spoken (cut short here: the caller talked over it), and some
    # setups post to the base URL with the path appended twice.
    second = await ask(
        url, body(call, "Hi, I'm Ada.", "echo: Hi,", "What is my name?"), path=DOUBLED_PATH
    )
    assert second.text == "echo: What is my name?"

    turn = f"{call['id']}:turn:2"
    [message] = published(await stack.inbound(lambda e: bool(published(e, turn))), turn)
    assert message["heard"] == "echo: Hi,"
    assert message["text"] == "What is my name?"


async def test_a_filler_when_the_brain_is_slow(stack: Pipeline) -> None:
    url = await stack.ingress(filler_after_ms=300, stream_deadline_s=45.0)
    stack.engine.gate = gate = asyncio.Event()  # the model says nothing until the filler is out
    stack.engine.answers.append("Let me check. Your order shipped today.")

    async def release_after_filler(line: str) -> None:
        if "One moment." in line:
            gate.set()

    answer = await ask(url, body(new_call(), "Where is my order?"), on_line=release_after_filler)
    assert answer.contents() == [
        "One moment. <flush />",
        " Let me check.",
        " Your order shipped today.",
    ]


async def test_a_retried_request_is_one_turn_and_both_get_the_answer(stack: Pipeline) -> None:
    first_instance = await stack.ingress(**PATIENT)
    other_instance = await stack.ingress(**PATIENT)
    call = new_call()
    request = body(call, "Do you deliver on Sundays?")
    stack.engine.answers.append("Yes, we do. Every Sunday until noon.")
    first = await ask(first_instance, request)
    # VAPI retries the same request; another ingress instance holds it this time.
    again = await ask(other_instance, request)

    assert first.text == again.text == "Yes, we do. Every Sunday until noon."
    record = await VapiCalls(stack.redis, stack.namespace).get(call["id"])
    memory = ConversationMemory(stack.redis, stack.namespace, MemoryLimits(20, 3600, 3600))
    entries = (await memory.snapshot(record.conversation_id)).recent
    assert [e.role for e in entries] == ["user", "assistant"]
    asked = [r for r in stack.engine.requests if r.conversation_id == record.conversation_id]
    assert len(asked) == 1, "the model was asked once"


async def test_a_non_streaming_request_gets_one_completion(stack: Pipeline) -> None:
    url = await stack.ingress(**PATIENT)
    stack.engine.answers.append("We are open. Come by.")
    async with httpx.AsyncClient(timeout=90.0) as client:
        response = await client.post(
            f"{url}{PATH}",
            json=body(new_call(), "Are you open?", stream=False),
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert response.status_code == 200
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "We are open. Come by."},
            "finish_reason": "stop",
        }
    ]


async def test_a_client_disconnect_is_a_barge_in(stack: Pipeline) -> None:
    url = await stack.ingress(**PATIENT)
    stack.engine.gate = asyncio.Event()  # the answer is being generated when VAPI hangs up
    stack.engine.answers.append("This answer is never heard.")
    call = new_call()
    turn = f"{call['id']}:turn:1"
    calls = VapiCalls(stack.redis, stack.namespace)
    async with (
        httpx.AsyncClient(timeout=90.0) as client,
        client.stream(
            "POST",
            f"{url}{PATH}",
            json=body(call, "Tell me everything."),
            headers={"authorization": f"Bearer {KEY}"},
        ) as response,
    ):
        lines = response.aiter_lines()
        assert json.loads((await anext(lines)).removeprefix("data: "))["choices"]
        assert await eventually(lambda: calls.streaming(call["id"]), timeout_s=30)
        # The caller talks over the answer: VAPI drops the request (leaving the block).

    interrupt = f"{call['id']}:interrupt:{turn}"
    events = await stack.inbound(lambda e: bool(published(e, interrupt)))
    [barge_in] = published(events, interrupt)
    assert barge_in["kind"] == "partial_transcript" and barge_in["address"] == call["id"]
    # The brain stopped the answer it was generating, and the stream was released.
    replies = await stack.replies(
        lambda e: any(r["in_reply_to"] == turn and r["kind"] == "stop" for r in e)
    )
    assert [r["kind"] for r in replies if r["in_reply_to"] == turn] == ["stop"]
    assert await eventually(lambda: _not(calls.streaming(call["id"])), timeout_s=30)


async def test_bad_credentials_and_bad_bodies_publish_nothing(stack: Pipeline) -> None:
    url = await stack.ingress(**PATIENT)
    call = new_call()
    good = body(call, "Hello?")
    async with httpx.AsyncClient(timeout=30.0) as client:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
            response = await client.post(f"{url}{PATH}", json=good, headers=headers)
            assert response.status_code == 401, headers
        auth = {"authorization": f"Bearer {KEY}"}
        no_call = {k: v for k, v in good.items() if k != "call"}
        no_user = {**good, "messages": [{"role": "system", "content": "hi"}]}
        for bad in (no_call, no_user, [good], {**good, "call": {"id": 7}}):
            response = await client.post(f"{url}{PATH}", json=bad, headers=auth)
            assert response.status_code == 400, bad
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"]["code"]
        response = await client.post(f"{url}{PATH}", content=b"{not json", headers=auth)
        assert response.status_code == 400

    # The same call's next, valid request is the first thing published for it.
    assert (await ask(url, body(call, "Hello?"))).text == "echo: Hello?"
    turn = f"{call['id']}:turn:1"
    events = await stack.inbound(lambda e: bool(published(e, turn)))
    assert [e["provider_message_id"] for e in events if e["address"] == call["id"]] == [turn]


async def test_the_apology_and_done_when_the_brain_is_not_running(infra: Infra) -> None:
    """A namespace no brain consumes: the answer never comes, the deadline does."""
    async with make_redis(infra.redis_url) as redis:
        lonely = Pipeline(infra, f"t{uuid.uuid4().hex[:10]}", ScriptedEngine(), redis)
        async with lonely.stack:
            url = await lonely.ingress(filler_after_ms=300, stream_deadline_s=2.0)
            started = time.monotonic()
            answer = await ask(url, body(new_call(), "Is anyone there?"))
            elapsed = time.monotonic() - started
    assert answer.contents() == [
        "One moment. <flush />",
        " Sorry, I'm having trouble right now. Could you say that again?",
    ]
    assert 2.0 <= elapsed < 15.0, elapsed  # the deadline, well within VAPI's 20 s


async def test_the_apology_and_done_when_kafka_does_not_take_the_turn(infra: Infra) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    settings = IngressSettings(
        kafka_bootstrap_servers="127.0.0.1:9",  # nothing listens: every publish fails
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        instance_id=f"ingress-{namespace}",
        publish_timeout_s=1.0,
    )
    vapi = VapiSettings(llm_key=SecretStr(KEY), filler_after_ms=30_000, stream_deadline_s=20.0)
    app = create_ingress(settings, channels=[vapi_plugin(vapi)])
    async with serve(app) as url:
        started = time.monotonic()
        answer = await ask(url, body(new_call(), "Hello?"))
        elapsed = time.monotonic() - started
    assert answer.contents() == ["Sorry, I'm having trouble right now. Could you say that again?"]
    assert elapsed < 15.0, elapsed  # at once, not at the deadline


async def _not(check: Awaitable[bool]) -> bool:
    return not await check
