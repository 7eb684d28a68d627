"""Hostile frames and Redis failures on the chat WebSocket, through the real ingress app served
by uvicorn in this process (real WebSocket framing and close handshakes), against the real
Kafka broker and Redis.

Every refused text frame must get an `error` frame on a socket that still answers `ping`; a
binary frame gets close code 1003; a Redis error is an `unavailable` frame, never a dead socket;
a bug is a 1011 close. Nothing may surface as "Exception in ASGI application".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
import websockets
from fastapi import FastAPI
from pydantic import SecretStr
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from structlog.testing import capture_logs

from services.channels.webchat.frames import MAX_FRAME_BYTES
from services.channels.webchat.store import PendingReply, now_ms
from services.ingress.config import IngressSettings
from services.ingress.main import create_app
from tests.support.infra import Infra

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SECRET = "integration-test-chat-token-secret-0123456789"
MARKER = "CUSTOMER-SECRET-TEXT"
"""Put in hostile frames; must never appear in a log line."""
DEEP = "[" * 5000 + "]" * 5000
DIGITS = "9" * 5000

# (frame, error code, id the error frame must carry). Generated variants of each attack:
# the hostile part in every field, in an extra field, and as the whole frame.
HOSTILE: list[tuple[str, str, str | None]] = [
    # lone surrogates (escaped: strict UTF-8 transports deliver them only this way)
    ('{"type":"message","id":"m1","text":"' + MARKER + '\\ud800"}', "bad_unicode", "m1"),
    ('{"type":"message","id":"m1","text":"\\udfff' + MARKER + '"}', "bad_unicode", "m1"),
    ('{"type":"message","id":"\\ud800","text":"' + MARKER + '"}', "bad_unicode", None),
    ('{"type":"message","id":"m1\\udc00","text":"\\ud800"}', "bad_unicode", None),
    ('{"type":"\\ud800"}', "bad_unicode", None),
    ('{"type":"message","id":"m1","text":"hi","\\ud800":1}', "bad_unicode", "m1"),
    # numbers Python refuses or cannot represent
    *[
        (raw.replace("N", DIGITS), "number_too_long", None)
        for raw in (
            '{"type":"message","id":"m1","text":N}',
            '{"type":"message","id":N,"text":"hi"}',
            '{"type":"message","id":"m1","text":"hi","n":N}',
            '{"type":"message","id":"m1","text":"hi","n":-N}',
            "N",
        )
    ],
    ('{"type":"message","id":"m1","text":"hi","n":1e999}', "bad_number", None),
    ('{"type":"message","id":"m1","text":"hi","n":NaN}', "bad_number", None),
    ('{"type":"message","id":"m1","text":"hi","n":-Infinity}', "bad_number", None),
    # nesting deep enough for a RecursionError
    (DEEP, "too_deep", None),
    ('{"a":' * 3000 + "1" + "}" * 3000, "too_deep", None),
    ('{"type":"message","id":"m1","text":"hi","x":' + DEEP + "}", "too_deep", None),
    ('{"type":"message","id":"m1","text":' + "[" * 2000 + "]" * 2000 + "}", "too_deep", None),
    # wrong types and lengths
    *[
        (json.dumps(frame), code, frame_id)
        for frame, code, frame_id in (
            ({"type": 1}, "unknown_type", None),
            ({"type": None}, "unknown_type", None),
            ({"type": ["ping"]}, "unknown_type", None),
            ({"type": "message", "id": 1, "text": MARKER}, "bad_id", None),
            ({"type": "message", "id": ["m1"], "text": MARKER}, "bad_id", None),
            ({"type": "message", "id": None, "text": MARKER}, "bad_id", None),
            ({"type": "message", "id": "m" * 129, "text": MARKER}, "bad_id", None),
            ({"type": "message", "id": "m\n1", "text": MARKER}, "bad_id", None),
            ({"type": "message", "id": "m1", "text": [MARKER]}, "empty_text", "m1"),
            ({"type": "message", "id": "m1", "text": {"t": MARKER}}, "empty_text", "m1"),
            ({"type": "message", "id": "m1", "text": 5}, "empty_text", "m1"),
            ({"type": "message", "id": "m1", "text": MARKER * 300}, "text_too_long", "m1"),
            ([MARKER], "bad_frame", None),
            (MARKER, "bad_frame", None),
            (None, "bad_frame", None),
        )
    ],
    (MARKER, "bad_json", None),
    ("", "bad_json", None),
    (
        '{"type":"message","id":"m1","text":"' + "x" * MAX_FRAME_BYTES + '"}',
        "frame_too_large",
        None,
    ),
]


@dataclass
class Served:
    app: FastAPI
    base_url: str

    @property
    def chat(self) -> Any:
        return self.app.state.channels["chat"]

    async def token(self) -> str:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{self.base_url}/v1/chat/sessions")
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def ws_url(self, token: str) -> str:
        return self.base_url.replace("http://", "ws://") + f"/v1/chat/ws?token={token}"


@pytest_asyncio.fixture
async def ingress(infra: Infra, namespace: str) -> AsyncIterator[Served]:
    """The real ingress app (lifespan included) served by uvicorn in this event loop."""
    settings = IngressSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        topic_partitions=1,
        instance_id=f"ingress-{namespace}",
        chat_token_secret=SecretStr(SECRET),
        chat_max_text=4000,
    )
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: uvicorn's records reach the root logger, so caplog sees them.
    config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "ingress did not start"
        await asyncio.sleep(0.02)
    try:
        yield Served(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def connect(served: Served, token: str | None = None) -> Any:
    ws = await websockets.connect(served.ws_url(token or await served.token()), max_size=None)
    assert (await next_frame(ws))["type"] == "ready"
    return ws


async def next_frame(ws: Any, timeout_s: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        return dict(json.loads(await ws.recv()))


async def assert_answers_ping(ws: Any) -> None:
    await ws.send('{"type":"ping"}')
    assert await next_frame(ws) == {"type": "pong"}


def assert_no_asgi_exception(caplog: pytest.LogCaptureFixture) -> None:
    crashes = [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]
    assert not crashes, crashes[0].getMessage()


@pytest.mark.parametrize("chunk", range(4))
async def test_hostile_text_frames_get_an_error_frame_and_the_socket_stays_open(
    ingress: Served, caplog: pytest.LogCaptureFixture, chunk: int
) -> None:
    caplog.set_level(logging.INFO)
    cases = HOSTILE[chunk::4]
    with capture_logs() as logs:
        ws = await connect(ingress)
        try:
            for raw, code, frame_id in cases:
                await ws.send(raw)
                error = await next_frame(ws)
                assert error["type"] == "error", (raw[:80], error)
                assert (error["code"], error.get("id")) == (code, frame_id), raw[:80]
                assert MARKER not in error["message"]
                await assert_answers_ping(ws)
            # Still a working chat socket: a real message is accepted by Kafka.
            await ws.send(json.dumps({"type": "message", "id": "ok-1", "text": "hello"}))
            assert await next_frame(ws, 30) == {"type": "ack", "id": "ok-1"}
        finally:
            await ws.close()
    assert_no_asgi_exception(caplog)
    assert all(MARKER not in repr(entry) for entry in logs)
    assert all(MARKER not in record.getMessage() for record in caplog.records)


async def test_a_binary_frame_is_closed_with_1003_and_the_session_reconnects(
    ingress: Served, caplog: pytest.LogCaptureFixture
) -> None:
    token = await ingress.token()
    for payload in (b'{"type":"ping"}', b"\xff\xfe\x00", b""):
        ws = await connect(ingress, token)
        await ws.send(payload)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_frame(ws)
        assert closed.value.rcvd is not None, "closed without a close frame"
        assert closed.value.rcvd.code == 1003
        # The page (or any client) reconnects with the same session and carries on.
        ws = await connect(ingress, token)
        await assert_answers_ping(ws)
        await ws.close()
    assert_no_asgi_exception(caplog)


# --- Redis failing under the socket ---------------------------------------------------------


class Flaky:
    """Wraps a real collaborator; the named methods raise `error()` while `failing` is set."""

    def __init__(self, real: Any, methods: set[str], error: Callable[[], Exception]) -> None:
        self._real = real
        self._methods = methods
        self._error = error
        self.failing = True
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name not in self._methods:
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.failing:
                raise self._error()
            return await attribute(*args, **kwargs)

        return call


@pytest.mark.parametrize(
    "error", [BusyLoadingError, ConnectionError, TimeoutError], ids=lambda e: e.__name__
)
async def test_identity_lookup_failing_on_redis_is_unavailable_and_the_resend_is_acked(
    ingress: Served, caplog: pytest.LogCaptureFixture, error: type[Exception]
) -> None:
    flaky = Flaky(ingress.chat.identity, {"resolve"}, lambda: error("Redis is loading"))
    ingress.chat.identity = flaky
    ws = await connect(ingress)
    await ws.send(json.dumps({"type": "message", "id": "m1", "text": "hi"}))
    assert (await next_frame(ws))["code"] == "unavailable"
    await assert_answers_ping(ws)

    flaky.failing = False
    await ws.send(json.dumps({"type": "message", "id": "m1", "text": "hi"}))  # the page's resend
    assert await next_frame(ws, 30) == {"type": "ack", "id": "m1"}
    await ws.close()
    assert_no_asgi_exception(caplog)


async def test_claim_failing_at_connect_keeps_the_socket_and_delivers_once_redis_is_back(
    ingress: Served, caplog: pytest.LogCaptureFixture
) -> None:
    chat = ingress.chat
    store = chat.delivery.store
    flaky = Flaky(store, {"claim_holder", "pending"}, lambda: BusyLoadingError("loading"))
    chat.delivery.store = flaky
    token = await ingress.token()
    session_id = chat.signer.verify(token).session_id
    reply = PendingReply("r1", "conv-1", "m0", "answer while you were away", now_ms())
    await store.put_reply(session_id, reply)

    ws = await connect(ingress, token)
    error = await next_frame(ws)
    assert (error["type"], error["code"], "id" in error) == ("error", "unavailable", False)
    await assert_answers_ping(ws)

    flaky.failing = False  # Redis has finished loading: the background retry delivers
    delivered = await next_frame(ws, 15)
    assert delivered == {
        "type": "reply",
        "reply_id": "r1",
        "in_reply_to": "m0",
        "text": "answer while you were away",
    }
    assert await store.holder(session_id) == chat.instance_id
    await assert_answers_ping(ws)  # nothing else was queued in front of the pong
    await ws.close()
    assert_no_asgi_exception(caplog)


async def test_release_failing_at_disconnect_is_quiet(
    ingress: Served, caplog: pytest.LogCaptureFixture
) -> None:
    chat = ingress.chat
    chat.delivery.store = Flaky(chat.delivery.store, {"release_holder"}, ConnectionError)
    ws = await connect(ingress)
    await ws.close()
    await asyncio.sleep(0.3)
    assert_no_asgi_exception(caplog)


async def test_a_bug_in_the_frame_handler_closes_with_1011_and_logs_only_its_type(
    ingress: Served, caplog: pytest.LogCaptureFixture
) -> None:
    chat = ingress.chat
    chat.identity = Flaky(chat.identity, {"resolve"}, lambda: ValueError(MARKER))
    with capture_logs() as logs:
        ws = await connect(ingress)
        await ws.send(json.dumps({"type": "message", "id": "m1", "text": MARKER}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_frame(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    failures = [entry for entry in logs if entry["event"] == "ingress.chat.socket_failed"]
    assert [entry["error"] for entry in failures] == ["ValueError"]
    assert all(MARKER not in repr(entry) for entry in logs)
    assert_no_asgi_exception(caplog)
    with contextlib.suppress(Exception):
        await ws.close()


# --- reloads ---------------------------------------------------------------------------------


class SlowRelease:
    """The real store, with `release_holder` delayed: the race window of a reload, widened."""

    def __init__(self, real: Any, delay_s: float) -> None:
        self._real = real
        self._delay_s = delay_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def release_holder(self, session_id: str, instance_id: str) -> None:
        await asyncio.sleep(self._delay_s)
        await self._real.release_holder(session_id, instance_id)


async def test_a_page_reload_never_leaves_the_session_without_a_holder(ingress: Served) -> None:
    """The old socket's release must not land after the new socket's claim (both write this
    instance's id), or egress finds no holder and the next reply waits for another reconnect."""
    chat = ingress.chat
    store = chat.delivery.store
    chat.delivery.store = SlowRelease(store, delay_s=0.3)
    token = await ingress.token()
    session_id = chat.signer.verify(token).session_id
    for reload in range(3):
        old = await connect(ingress, token)
        await old.close()  # the server's release is now in flight...
        new = await connect(ingress, token)  # ...while the new socket claims the session
        await asyncio.sleep(0.5)
        assert await store.holder(session_id) == chat.instance_id, f"lost at reload {reload}"
        await new.close()
