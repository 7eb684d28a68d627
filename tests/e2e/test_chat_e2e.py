"""Web chat through the whole pipeline: browser socket → ingress → Kafka → brain → Kafka →
egress → the ingress holding the socket."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from shared.contracts import Channel
from shared.topics import Topics
from tests.e2e.conftest import Stack
from tests.support.chat import ChatClient, new_session
from tests.support.kafka import eventually, read_headers, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


async def test_round_trip_with_shared_memory_and_ops_events(stack: Stack) -> None:
    session = await new_session(stack.ingress_url)
    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        first = await chat.ask("m1", "Hello, my name is Ana")
        second = await chat.ask("m2", "What did I just tell you?")
    assert first["text"] == "You said: Hello, my name is Ana"
    assert second["text"] == "You said: What did I just tell you?"
    assert first["reply_id"] != second["reply_id"]

    # The model saw the first turn when answering the second: memory works.
    requests = stack.model.state.requests
    assert len(requests) == 2
    second_prompt = [m["content"] for m in requests[1]["messages"]]
    assert "Hello, my name is Ana" in second_prompt
    assert "You said: Hello, my name is Ana" in second_prompt

    # Every stage reported the turn on the ops topic.
    topics = Topics(stack.env["SWITCHBOARD_TOPIC_NAMESPACE"])
    wanted = {
        ("ingress", "received"),
        ("ingress", "published"),
        ("brain", "llm_start"),
        ("brain", "llm_end"),
        ("brain", "reply_emitted"),
        ("egress", "queued"),
        ("ingress", "delivered"),
    }

    def seen(events: list[dict]) -> set[tuple[str, str]]:
        return {(e.get("stage"), e.get("step")) for e in events if e["type"] == "lifecycle"}

    events = await read_topic(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"], topics.ops, lambda evs: wanted <= seen(evs)
    )
    assert wanted <= seen(events)
    assert any(e["type"] == "receipt" and e["status"] == "delivered" for e in events)
    assert all("Ana" not in json.dumps(e) for e in events), "ops events must carry no text"

    # W3C trace context travels in Kafka headers: the reply continues the inbound trace.
    bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    inbound_headers = await read_headers(bootstrap, topics.inbound, 2)
    reply_headers = await read_headers(bootstrap, topics.replies(Channel.CHAT), 2)
    inbound_traces = {h["traceparent"].split("-")[1] for h in inbound_headers}
    reply_traces = {h["traceparent"].split("-")[1] for h in reply_headers}
    assert len(inbound_traces) == 2
    assert reply_traces == inbound_traces


async def test_message_sent_while_brain_is_down_is_answered_after_restart(stack: Stack) -> None:
    stack.services["brain"].kill()
    session = await new_session(stack.ingress_url)
    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        await chat.send("m1", "anyone there?")
        await chat.next_frame("ack", id="m1")  # accepted by Kafka with no brain running
        with pytest.raises(TimeoutError):
            await chat.next_frame("reply", timeout_s=2.0)
        stack.start("brain")
        reply = await chat.next_frame("reply", timeout_s=60.0, in_reply_to="m1")
    assert reply["text"] == "You said: anyone there?"


async def test_reply_for_a_closed_browser_is_delivered_on_reconnect(stack: Stack) -> None:
    stack.model.configure(latency_ms=1500)
    session = await new_session(stack.ingress_url)
    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        await chat.send("m1", "remember this")
        await chat.next_frame("ack", id="m1")
    # The browser is gone while the model thinks; wait until egress has queued the reply.
    topics = Topics(stack.env["SWITCHBOARD_TOPIC_NAMESPACE"])
    events = await read_topic(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"],
        topics.ops,
        lambda evs: any(e.get("step") == "queued" for e in evs),
    )
    queued = [e for e in events if e.get("step") == "queued"]
    assert queued and queued[0]["reason"] == "no_live_socket"

    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        reply = await chat.next_frame("reply", timeout_s=10.0, in_reply_to="m1")
        assert reply["text"] == "You said: remember this"
        # Delivered once: nothing else arrives.
        with pytest.raises(TimeoutError):
            await chat.next_frame("reply", timeout_s=1.0)
    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        with pytest.raises(TimeoutError):
            await chat.next_frame("reply", timeout_s=1.0)


async def test_bad_frames_get_errors_and_the_socket_stays_usable(stack: Stack) -> None:
    session = await new_session(stack.ingress_url)
    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        for raw, code in [
            ("not json", "bad_json"),
            ('{"type":"shout"}', "unknown_type"),
            ('{"type":"message","id":"m0","text":""}', "empty_text"),
            (json.dumps({"type": "message", "id": "m0", "text": "x" * 5000}), "text_too_long"),
        ]:
            await chat.send_raw(raw)
            error = await chat.next_frame("error")
            assert error["code"] == code
        await chat.send_raw('{"type":"ping"}')
        await chat.next_frame("pong")
        reply = await chat.ask("m1", "still there?")
    assert reply["text"] == "You said: still there?"
    assert len(stack.model.state.requests) == 1, "rejected frames never reach the model"


async def test_bad_and_expired_tokens_are_refused(stack: Stack) -> None:
    session = await new_session(stack.ingress_url)
    ws_url = stack.ingress_url.replace("http://", "ws://") + "/v1/chat/ws"
    forged = session["token"][:-4] + ("AAAA" if not session["token"].endswith("AAAA") else "BBBB")
    expired = "v1.cs_AAAAAAAAAAAAAAAAAAAAAAAA.1000.sig"
    for token in ("", "garbage", forged, expired):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"{ws_url}?token={token}"):
                pass
        assert refused.value.response.status_code == 403


async def test_poison_event_is_dead_lettered_and_does_not_block(stack: Stack) -> None:
    from aiokafka import AIOKafkaProducer

    topics = Topics(stack.env["SWITCHBOARD_TOPIC_NAMESPACE"])
    producer = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"])
    await producer.start()
    try:
        for partition in range(3):  # one poison record in front of every partition
            await producer.send_and_wait(
                topics.inbound, b'{"not": "an event"}', partition=partition
            )
    finally:
        await producer.stop()
    session = await new_session(stack.ingress_url)
    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        reply = await chat.ask("m1", "after the poison")
    assert reply["text"] == "You said: after the poison"
    letters = await read_topic(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"], topics.dlq_inbound, lambda evs: len(evs) >= 3
    )
    assert len(letters) == 3
    assert {letter["reason"] for letter in letters} == {"invalid_event"}
    assert letters[0]["payload"] == '{"not": "an event"}'


async def test_model_failure_gets_an_apology(stack: Stack) -> None:
    stack.model.configure(fail_next=10, fail_status=500)
    session = await new_session(stack.ingress_url)
    async with ChatClient(stack.ingress_url, session["token"]) as chat:
        reply = await chat.ask("m1", "hello?")
    assert reply["text"].startswith("Sorry")


async def test_readiness_reflects_dependencies(stack: Stack) -> None:
    async with httpx.AsyncClient() as client:
        for process in stack.services.values():
            response = await client.get(f"{process.url}/readyz")
            assert response.status_code == 200
            checks = response.json()["checks"]
            assert checks["kafka"] is True and checks["redis"] is True
            assert all(checks.values()), checks
            assert (await client.get(f"{process.url}/livez")).status_code == 200
    from tests.support.processes import ServiceProcess

    broken = ServiceProcess(
        "ingress", {**stack.env, "REDIS_URL": "redis://127.0.0.1:1/0"}, stack.log_dir
    ).start(wait=False)
    try:
        status = await eventually(lambda: _status(broken.url), timeout_s=30)
        assert status == 503
        assert (await asyncio.to_thread(httpx.get, f"{broken.url}/healthz")).status_code == 200
    finally:
        broken.stop()


async def _status(url: str) -> int | None:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{url}/readyz", timeout=3)).status_code
    except httpx.HTTPError:
        return None


async def test_replies_reach_the_ingress_instance_holding_the_socket(stack: Stack) -> None:
    from tests.support.processes import ServiceProcess

    other = ServiceProcess("ingress", stack.env, stack.log_dir).start()
    try:
        # Session made on A; sockets on B then A: each reply goes to the current holder.
        session = await new_session(stack.ingress_url)
        async with ChatClient(other.url, session["token"]) as on_b:
            reply = await on_b.ask("m1", "via instance B")
        assert reply["text"] == "You said: via instance B"
        stack.model.configure(latency_ms=1500)
        async with ChatClient(other.url, session["token"]) as on_b:
            await on_b.send("m2", "sent on B, answered on A")
            await on_b.next_frame("ack", id="m2")
        async with ChatClient(stack.ingress_url, session["token"]) as on_a:
            late = await on_a.next_frame("reply", timeout_s=20.0, in_reply_to="m2")
        assert late["text"] == "You said: sent on B, answered on A"
    finally:
        other.stop()


async def test_sigusr1_logs_where_every_task_waits(stack: Stack) -> None:
    import os
    import signal

    ingress = stack.services["ingress"]
    assert ingress.process is not None
    os.kill(ingress.process.pid, signal.SIGUSR1)

    def dumped() -> bool:
        return '"event": "diagnostics.tasks"' in ingress.log_path.read_text(errors="replace")

    assert await eventually(dumped, timeout_s=10)
    log = ingress.log_path.read_text(errors="replace")
    assert '"task": "inbox"' in log  # the inbox reader, by name
    assert ingress.process.poll() is None  # and the process lives on
