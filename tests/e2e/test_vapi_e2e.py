"""VAPI voice through the whole system as real processes: the fake VAPI plays the calls over
HTTP (assistant-request, the custom LLM read strictly as VAPI reads it, barge-in, the
end-of-call report, its control URLs), ingress, the brain (offline engine: deterministic,
see services/brain/engines/offline.py) and egress, on the real Kafka and Redis.

One deployment serves the module; `switchboard vapi setup` points the fake's phone number
and assistant at ingress, as an operator would. Each test uses its own caller number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from services.brain.memory import ConversationMemory, MemoryEntry, MemoryLimits
from services.channels.vapi.answers import FUNCTION_RESULT, TOOL_ERROR
from services.channels.vapi.channel import vapi_plugin
from services.channels.vapi.fake import CallResult, Line, ServerAuth, read_answer
from services.channels.vapi.fake.messages import post_message
from services.channels.vapi.settings import EVENTS_PATH, LLM_BASE_PATH, VapiSettings
from services.channels.vapi.store import VapiCalls
from services.ingress.config import IngressSettings
from services.ingress.main import create_app as create_ingress
from shared.topics import Topics
from tests.e2e.conftest import VAPI_LLM_KEY, VAPI_SERVER_SECRET, Stack, running_stack
from tests.e2e.test_sms_e2e import SWITCHBOARD, new_number, replies_to, text
from tests.support.chat import ChatClient, new_session
from tests.support.infra import Infra
from tests.support.kafka import eventually
from tests.support.vapi import call as vapi_call
from tests.support.vapi import end_of_call_report, message, tool_calls

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

FALLBACK = VapiSettings.model_fields["fallback_greeting"].default
APOLOGY = VapiSettings.model_fields["apology_text"].default
FILLER = VapiSettings.model_fields["filler_text"].default
STREAM_DEADLINE_S = 8.0
"""The custom-LLM route's deadline in this deployment (default 15 s), so the brain-down
test waits less; still far above what an offline answer takes."""
FILLER_AFTER_MS = 3000
"""A noisy machine may be slow to the first sentence; the filler is checked where wanted."""
LIMITS = MemoryLimits(max_turns=20, ttl_s=3600, processed_ttl_s=3600)

GREETING = "Hello, thanks for calling Switchboard Demo Co.! How can I help you today?"
HOURS = (
    "Our support team is available Monday to Friday from 8am to 8pm, and Saturday from 9am"
    " to 5pm. We are closed on Sundays and public holidays."
)
GOODBYE = "Thanks for contacting Switchboard Demo Co., goodbye!"


@pytest.fixture(scope="module")
def vapi_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One deployment for the module, set up for VAPI by `switchboard vapi setup`."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    with running_stack(
        infra,
        namespace,
        tmp_path_factory.mktemp("vapi-e2e"),
        BRAIN_ENGINE="offline",
        VAPI_STREAM_DEADLINE_S=str(STREAM_DEADLINE_S),
        VAPI_FILLER_AFTER_MS=str(FILLER_AFTER_MS),
    ) as stack:
        setup = subprocess.run(
            [str(SWITCHBOARD), "vapi", "setup", "--phone-number-id", "auto"],
            env={**os.environ, **stack.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert setup.returncode == 0, setup.stdout + setup.stderr
        for secret in (VAPI_SERVER_SECRET, VAPI_LLM_KEY, stack.vapi.private_key):
            assert secret not in setup.stdout + setup.stderr
        yield stack


# -- helpers ----------------------------------------------------------------------------------


async def call(stack: Stack, number: str, lines: list[str | Line], **options: Any) -> CallResult:
    """One inbound call to the fake's number (which asks ingress for its assistant)."""
    return await stack.vapi.astart_call(number, lines, **{"linger_s": 0.2, **options})


async def call_without(stack: Stack, service: str, lines: list[str | Line]) -> CallResult:
    """One call from a new number while `service` is stopped; it is started again after."""
    stack.services[service].stop()
    try:
        return await call(stack, new_number(), lines)
    finally:
        stack.start(service)


def spoken(text: str) -> str:
    """Text as TTS says it: whitespace runs are one space (sentences are streamed apart)."""
    return " ".join(text.split())


async def memory_of(redis: Redis, stack: Stack, call_id: str) -> list[MemoryEntry]:
    """The remembered turns of the call's conversation, oldest first."""
    prefix = stack.env["SWITCHBOARD_REDIS_PREFIX"]
    record = await VapiCalls(redis, prefix).get(call_id)
    assert record.conversation_id, "ingress resolved the caller's conversation"
    return (await ConversationMemory(redis, prefix, LIMITS).snapshot(record.conversation_id)).recent


def users(entries: list[MemoryEntry]) -> list[str]:
    return [e.text for e in entries if e.role == "user"]


async def published(stack: Stack, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Everything on the inbound topic up to its end as of now: whatever ingress acknowledged
    before this call (it answers only once Kafka has a message) is in it."""
    topic = Topics(stack.env["SWITCHBOARD_TOPIC_NAMESPACE"]).inbound
    partitions = int(stack.env["SWITCHBOARD_TOPIC_PARTITIONS"])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"], enable_auto_commit=False
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, n) for n in range(partitions)]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        for tp, offset in (await consumer.beginning_offsets(assigned)).items():
            consumer.seek(tp, offset)
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        for tp in assigned:
            while await consumer.position(tp) < ends[tp]:
                assert time.monotonic() < deadline, "the inbound topic was not read to its end"
                for records in (await consumer.getmany(tp, timeout_ms=300)).values():
                    events.extend(json.loads(record.value) for record in records)
        return events
    finally:
        await consumer.stop()


def about(events: list[dict[str, Any]], call_id: str) -> list[str]:
    """Provider message ids of what was published about one call."""
    return [e["provider_message_id"] for e in events if e.get("address") == call_id]


def assert_clean(result: CallResult) -> None:
    """Every server message was taken (2xx) and every answer was a valid stream."""
    assert not result.failed, (result.ended_reason, [t.error for t in result.turns])
    assert [m.status_code for m in result.messages] == [200] * len(result.messages), [
        (m.type, m.status_code) for m in result.messages
    ]
    for turn in result.turns:
        assert turn.status_code == 200 and not turn.error, turn
        assert turn.done or turn.interrupted, "every stream ends with [DONE]"


# -- a call -----------------------------------------------------------------------------------

CALL_LINES: list[str | Line] = [
    "What are your opening hours?",
    "Tell me more",
    "How much do your plans cost?",
    "Okay, thanks, bye.",
]


@pytest_asyncio.fixture(scope="module")
async def goodbye_call(vapi_stack: Stack) -> CallResult:
    """A whole call: greeting, three questions, and a goodbye that ends it."""
    return await call(vapi_stack, new_number(), CALL_LINES, linger_s=20)


async def test_a_full_call_greets_answers_three_turns_and_hangs_up_on_goodbye(
    vapi_stack: Stack, goodbye_call: CallResult, redis: Redis
) -> None:
    stack, result = vapi_stack, goodbye_call
    assert_clean(result)
    assert result.greeting == GREETING, "the brain's greeting, not the fallback"
    [asked] = result.sent("assistant-request")
    assert asked.elapsed_s < 6
    heard = [spoken(h).removeprefix(f"{FILLER} ") for h in result.heard]
    assert heard[0] == HOURS
    assert heard[1].startswith("Something related that may help: ")
    assert "Basic" in heard[2] and "$30 a month" in heard[2] and "**" not in heard[2]
    assert heard[3] == GOODBYE
    assert [t.finish_reason for t in result.turns] == ["stop"] * 4
    assert all(turn.chunks >= 3 for turn in result.turns), "role, content, finish chunks"

    # "bye" ended the call: egress sent end-call on the control URL, after the stream.
    assert result.ended_reason == "assistant-ended-call"
    [control] = stack.vapi.control_log(result.call_id)
    assert control["type"] == "end-call" and control["status"] == 200
    assert control["authorized"], "egress sent the public key"
    assert not control["during_stream"], "never while the answer streams"
    [report] = result.sent("end-of-call-report")
    assert report.body["message"]["endedReason"] == "assistant-ended-call"

    entries = await memory_of(redis, stack, result.call_id)
    assert users(entries) == CALL_LINES
    assert [e.role for e in entries] == ["assistant"] + ["user", "assistant"] * 4
    assert {e.channel for e in entries} == {"vapi"}
    assert [e.text for e in entries[:-1:2]] == [GREETING, HOURS, heard[1], heard[2]]
    assert not any(e.interrupted for e in entries[:-1])
    ids = about(await published(stack), result.call_id)
    assert ids.count(f"{result.call_id}:ended") == 1, "status-update and report: one CALL_ENDED"
    assert ids.count(f"{result.call_id}:greeting") == 1


async def test_the_goodbye_that_ended_the_call_is_remembered_as_said(
    vapi_stack: Stack, goodbye_call: CallResult, redis: Redis
) -> None:
    result = goodbye_call
    assert result.ended_reason == "assistant-ended-call"
    [report] = result.sent("end-of-call-report")
    spoken_by_vapi = report.body["message"]["artifact"]["messagesOpenAIFormatted"]
    assert spoken_by_vapi[-1] == {"role": "assistant", "content": GOODBYE}
    last = (await memory_of(redis, vapi_stack, result.call_id))[-1]
    assert (last.role, last.text, last.interrupted) == ("assistant", GOODBYE, False)


async def test_a_barge_in_is_remembered_as_heard_and_the_next_turn_knows_it(
    vapi_stack: Stack, redis: Redis
) -> None:
    stack = vapi_stack
    cut_at = 40
    result = await call(
        stack,
        new_number(),
        [Line("What are your opening hours?", interrupt_after_chars=cut_at), "Tell me more"],
    )
    assert_clean(result)
    first, second = result.turns
    assert first.interrupted and not first.done
    heard = spoken(first.heard).removeprefix(f"{FILLER} ")
    assert HOURS.startswith(heard) and 0 < len(heard) <= cut_at, "cut where it was heard"
    # VAPI tells the LLM what was spoken (modelOutputInMessagesEnabled false).
    assert second.request["messages"][-2] == {"role": "assistant", "content": first.heard}

    entries = await memory_of(redis, stack, result.call_id)
    assert users(entries) == ["What are your opening hours?", "Tell me more"]
    answer = entries[2]
    assert answer.role == "assistant" and answer.interrupted
    assert answer.text == heard, "memory holds what was heard"
    # The engine's prompt for the next turn: what was heard, marked interrupted.
    record = await VapiCalls(redis, stack.env["SWITCHBOARD_REDIS_PREFIX"]).get(result.call_id)
    memory = ConversationMemory(redis, stack.env["SWITCHBOARD_REDIS_PREFIX"], LIMITS)
    history = (await memory.snapshot(record.conversation_id)).history
    assert history[2].text == f"{heard} [interrupted by the caller]"
    # ...and the engine answered from it: the hours were never heard in full, so "tell me
    # more" is not a follow-up on them (after the full answer it is, see the full call).
    assert spoken(second.heard).removeprefix(f"{FILLER} ").startswith("Happy to help!")
    assert not second.interrupted and second.done


# -- one customer across channels ---------------------------------------------------------------


async def test_sms_memory_greets_the_caller_and_sms_and_a_linked_chat_continue_the_call(
    vapi_stack: Stack, redis: Redis
) -> None:
    stack = vapi_stack
    number = new_number()
    assert (await text(stack, number, "Hi, my name is Ada")).status_code == 200
    [hello] = await replies_to(stack, number)
    assert "Ada" in hello["body"]

    result = await call(stack, number, ["What's my name?", "Actually, call me Grace."])
    assert_clean(result)
    assert result.greeting.startswith("Welcome back, Ada!"), result.greeting
    heard = [spoken(h).removeprefix(f"{FILLER} ") for h in result.heard]
    assert heard[0] == "Of course! You told me on sms that your name is Ada."
    assert heard[1].startswith("Nice to meet you, Grace!")

    # After the call, SMS continues with the call's memory.
    assert (await text(stack, number, "What's my name?")).status_code == 200
    replies = await replies_to(stack, number, count=2)
    assert replies[-1]["body"] == "Of course! You told me on vapi that your name is Grace."

    # A web chat linked to the number sees it too.
    session = await new_session(stack.ingress_url)
    auth = {"Authorization": f"Bearer {session['token']}"}
    async with httpx.AsyncClient(base_url=stack.ingress_url, timeout=20) as client:
        started = await client.post("/v1/identity/link", json={"phone": number}, headers=auth)
        assert started.status_code in (200, 202), started.text
        code_sms = (await replies_to(stack, number, count=3))[-1]
        code = re.search(r"\b(\d{6})\b", code_sms["body"])
        assert code, "the SMS carries a code"
        verified = await client.post(
            "/v1/identity/link/verify", json={"code": code.group(1)}, headers=auth
        )
        assert verified.status_code == 200, verified.text
    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        reply = await chat.ask("m1", "What's my name?", timeout_s=60)
    assert reply["text"] == "Of course! You told me on vapi that your name is Grace."


# -- retries and tools ----------------------------------------------------------------------------


async def test_retried_events_are_answered_again_and_published_once(
    vapi_stack: Stack, redis: Redis
) -> None:
    stack = vapi_stack
    result = await call(stack, new_number(), ["What are your opening hours?"])
    assert_clean(result)
    [turn] = result.turns
    call_id = result.call_id
    events_url = f"{stack.ingress_url}{EVENTS_PATH}"
    auth = ServerAuth("secret", VAPI_SERVER_SECRET)
    async with httpx.AsyncClient() as http:
        # VAPI retries what it sent when it lost the answer: the very same messages.
        [greeting] = result.sent("assistant-request")
        greeting_again = await post_message(http, events_url, greeting.body, auth, timeout_s=10)
        [report] = result.sent("end-of-call-report")
        report_again = await post_message(http, events_url, report.body, auth, timeout_s=10)
        # ...and the custom-LLM request, after its answer was lost.
        llm_again = await read_answer(
            http,
            f"{stack.ingress_url}{LLM_BASE_PATH}/chat/completions",
            turn.request,
            {"Authorization": f"Bearer {VAPI_LLM_KEY}"},
            timeout_s=20,
            turn_timeout_s=30,
        )
    assert greeting_again.status_code == 200 and report_again.status_code == 200
    # The first greeting was given: a repeat gets a valid assistant at once, asking nothing.
    assert greeting_again.response["assistant"]["firstMessage"] == FALLBACK
    assert greeting_again.elapsed_s < 2
    assert report_again.response == {}
    assert llm_again.done and not llm_again.error, llm_again
    assert spoken(llm_again.heard).removeprefix(f"{FILLER} ") == HOURS, "the recorded answer"

    entries = await memory_of(redis, stack, call_id)
    assert users(entries) == ["What are your opening hours?"], "one turn"
    assert [e.role for e in entries] == ["assistant", "user", "assistant"]
    assert entries[0].text == GREETING
    # (The hang-up may have cut the answer to what the brain estimates was heard.)
    assert HOURS.startswith(entries[2].text)
    ids = about(await published(stack), call_id)
    assert ids.count(f"{call_id}:greeting") == 1
    assert ids.count(f"{call_id}:ended") == 1


async def test_a_llm_request_retried_while_the_first_is_open_is_one_turn(
    vapi_stack: Stack, redis: Redis
) -> None:
    """VAPI gave up waiting on the first request and sent it again at once."""
    stack = vapi_stack
    the_call = vapi_call(number=new_number())
    body = {
        "model": "switchboard",
        "stream": True,
        "messages": [
            {"role": "assistant", "content": GREETING},
            {"role": "user", "content": "How much do your plans cost?"},
        ],
        "call": the_call,
    }
    url = f"{stack.ingress_url}{LLM_BASE_PATH}/chat/completions"
    headers = {"Authorization": f"Bearer {VAPI_LLM_KEY}"}
    async with httpx.AsyncClient() as http:
        first, retry = await asyncio.gather(
            *(
                read_answer(http, url, body, headers, timeout_s=20, turn_timeout_s=30)
                for _ in range(2)
            )
        )
    for answer in (first, retry):
        assert answer.done and not answer.error and answer.status_code == 200, answer
    plans = spoken(first.heard).removeprefix(f"{FILLER} ")
    assert plans.startswith("We offer three plans:")
    assert spoken(retry.heard).removeprefix(f"{FILLER} ") == plans, "both get the one answer"

    entries = await memory_of(redis, stack, the_call["id"])
    assert [(e.role, e.text) for e in entries] == [
        ("user", "How much do your plans cost?"),
        ("assistant", plans),
    ], "one turn"


async def test_tool_calls_are_answered_in_the_exact_shape(vapi_stack: Stack) -> None:
    stack = vapi_stack
    the_call = vapi_call()
    auth = ServerAuth("secret", VAPI_SERVER_SECRET)
    url = f"{stack.ingress_url}{EVENTS_PATH}"
    async with httpx.AsyncClient() as http:
        tools = await post_message(http, url, tool_calls(the_call), auth, timeout_s=10)
        legacy = message("function-call", the_call, functionCall={"name": "f", "parameters": {}})
        function = await post_message(http, url, legacy, auth, timeout_s=10)
    assert tools.status_code == 200
    assert tools.response == {
        "results": [
            {"toolCallId": "call_schema", "name": "lookup_order", "error": TOOL_ERROR},
            {"toolCallId": "call_object", "name": "x", "error": TOOL_ERROR},
            {"toolCallId": "call_doc", "name": "check_weather", "error": TOOL_ERROR},
        ]
    }
    assert function.status_code == 200 and function.response == {"result": FUNCTION_RESULT}


# -- how VAPI proves who it is --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def ingress_in_process(stack: Stack, **vapi: Any) -> AsyncIterator[tuple[str, VapiSettings]]:
    """One more ingress instance of the deployment, in this process, serving VAPI only with
    the given settings; its public URL is known before it is built (the HMAC `{url}`, the
    transient assistant's URLs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = VapiSettings(public_base_url=url, llm_key=SecretStr(VAPI_LLM_KEY), **vapi)
    namespace = stack.env["SWITCHBOARD_TOPIC_NAMESPACE"]
    ingress = IngressSettings(
        kafka_bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"],
        redis_url=stack.env["REDIS_URL"],
        topic_namespace=namespace,
        redis_prefix=stack.env["SWITCHBOARD_REDIS_PREFIX"],
        topic_partitions=3,
        instance_id=f"ingress-auth-{uuid.uuid4().hex[:8]}",
    )
    app: FastAPI = create_ingress(ingress, channels=[vapi_plugin(settings)])
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        ready = await eventually(lambda: _ready(url, task), timeout_s=60, interval_s=0.2)
        assert ready, "the in-process ingress did not become ready"
        yield url, settings
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def _ready(url: str, task: asyncio.Task[None]) -> bool:
    assert not task.done(), f"the in-process ingress stopped: {task.exception()!r}"
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{url}/readyz", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


AUTH_MODES = {
    "secret": {"auth_mode": "secret"},
    "bearer": {"auth_mode": "bearer"},
    "hmac": {"auth_mode": "hmac", "hmac_prefix": "sha256="},
}


@pytest.mark.parametrize("mode", list(AUTH_MODES))
async def test_each_auth_mode_refuses_forgeries_and_lets_vapi_in(
    vapi_stack: Stack, mode: str
) -> None:
    stack = vapi_stack
    secret = f"e2e-{mode}-secret-{uuid.uuid4().hex[:12]}"
    fields = {**AUTH_MODES[mode], "server_secret": SecretStr(secret)}
    async with ingress_in_process(stack, **fields) as (url, settings):
        events_url = f"{url}{EVENTS_PATH}"
        genuine = ServerAuth.from_settings(settings)
        forger = ServerAuth.from_settings(
            VapiSettings(**{**fields, "server_secret": SecretStr(f"{secret}-forged")})
        )
        # No phone number of the fake's (setup pointed it at the stack's own ingress): the
        # call is VAPI's to this instance only, signed as the target says.
        target = {
            "server_url": events_url,
            "llm_url": f"{url}{LLM_BASE_PATH}",
            "llm_key": VAPI_LLM_KEY,
            "phone_number_id": "not-a-number-of-the-fake",
        }
        forged = await call(stack, new_number(), ["Hello?"], auth=forger, **target)
        assert forged.ended_reason == "assistant-request-failed"
        assert forged.turns == [], "VAPI never got an assistant"
        assert {m.status_code for m in forged.messages} == {401}

        unsigned_call = vapi_call()
        bodies = (message("assistant-request", unsigned_call), end_of_call_report(unsigned_call))
        # The right secret, presented the way another mode would.
        elsewise = [ServerAuth(other, secret) for other in AUTH_MODES if other != mode]
        refused: list[httpx.Response] = []
        async with httpx.AsyncClient(timeout=10) as http:
            for body in bodies:
                raw = json.dumps(body).encode()
                plain = {"Content-Type": "application/json"}
                attempts = [plain] + [
                    plain | auth.headers(raw, url=events_url) for auth in elsewise
                ]
                if mode == "hmac":  # signed, but another body, or long ago
                    hang = b'{"message":{"type":"hang"}}'
                    attempts.append(plain | genuine.headers(hang, url=events_url))
                    old = time.time() - 3600
                    attempts.append(plain | genuine.headers(raw, url=events_url, now=old))
                for headers in attempts:
                    refused.append(await http.post(events_url, content=raw, headers=headers))
        assert [r.status_code for r in refused] == [401] * len(refused)

        valid = await call(
            stack, new_number(), ["What are your opening hours?"], auth=genuine, **target
        )
        assert_clean(valid)
        assert valid.greeting == GREETING
        assert spoken(valid.heard[0]).removeprefix(f"{FILLER} ") == HOURS

    events = await published(stack)
    assert f"{valid.call_id}:greeting" in about(events, valid.call_id)
    assert f"{valid.call_id}:ended" in about(events, valid.call_id)
    assert about(events, forged.call_id) == [], "a forgery publishes nothing"
    assert about(events, unsigned_call["id"]) == []


# -- the brain is down ----------------------------------------------------------------------------


async def test_with_the_brain_stopped_vapi_still_gets_a_greeting_and_a_valid_stream(
    vapi_stack: Stack,
) -> None:
    result = await call_without(vapi_stack, "brain", ["Is anyone there?"])
    assert_clean(result)
    [asked] = result.sent("assistant-request")
    assert asked.elapsed_s < 6, "answered before VAPI's deadline"
    assert result.greeting == FALLBACK
    [turn] = result.turns
    assert turn.done and turn.finish_reason == "stop"
    assert spoken(turn.heard) == f"{FILLER} {APOLOGY}"
    assert turn.first_token_s is not None and turn.first_token_s < STREAM_DEADLINE_S
    assert turn.elapsed_s < 20, "within VAPI's custom-LLM timeout"


# -- egress is down: the brain's stream relay ------------------------------------------------------


async def test_with_egress_stopped_the_answer_still_streams_through_the_brains_relay(
    vapi_stack: Stack,
) -> None:
    # The greeting has only egress's path (a held answer), so it falls back; the custom-LLM
    # answer reaches the holder straight from the brain (BRAIN_STREAM_DIRECT, on by
    # default), every part and the final one, so the stream ends with [DONE] on its own.
    result = await call_without(vapi_stack, "egress", ["What are your opening hours?"])
    assert_clean(result)
    assert result.greeting == FALLBACK, "no egress: the greeting's held answer never came"
    [turn] = result.turns
    assert turn.done and turn.finish_reason == "stop"
    assert spoken(turn.heard).removeprefix(f"{FILLER} ") == HOURS, "the answer, not an apology"
    assert turn.elapsed_s < STREAM_DEADLINE_S, "ended by the final part, not the deadline"
