"""The fake OpenAI server, driven through the official openai SDK over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from services.fakes.openai_server import FakeModelConfig, FakeOpenAIServer, create_app

API_KEY = "sk-fake-test"
REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": "what time is it"},
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer(FakeModelConfig(api_key=API_KEY)).start()
    yield srv
    srv.stop()
    assert not srv.is_running


@pytest.fixture(autouse=True)
def _fresh(server: FakeOpenAIServer) -> None:
    server.state.reset()


def client(server: FakeOpenAIServer, **kwargs: Any) -> AsyncOpenAI:
    kwargs.setdefault("api_key", API_KEY)
    kwargs.setdefault("max_retries", 0)
    return AsyncOpenAI(base_url=server.base_url, **kwargs)


async def ask(sdk: AsyncOpenAI, **kwargs: Any) -> str:
    resp = await sdk.chat.completions.create(model="fake-model", messages=MESSAGES, **kwargs)
    return resp.choices[0].message.content or ""


def test_create_app_has_the_routes() -> None:
    paths = {getattr(r, "path", None) for r in create_app().routes}
    assert {
        "/v1/chat/completions",
        "/v1/models",
        "/_fake/requests",
        "/_fake/reset",
        "/_fake/config",
    } <= paths


@pytest.mark.asyncio
async def test_non_stream_answer_echoes_last_user_message(server: FakeOpenAIServer) -> None:
    async with client(server) as sdk:
        resp = await sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "fake-model"
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: what time is it"
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 6
    assert resp.usage.prompt_tokens == 11
    assert resp.usage.total_tokens == 17


@pytest.mark.asyncio
async def test_stream_yields_word_chunks_that_join_to_the_answer(server: FakeOpenAIServer) -> None:
    async with client(server) as sdk:
        stream = await sdk.chat.completions.create(
            model="fake-model",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    content = [
        c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content
    ]
    assert len(content) == 6
    assert "".join(content) == "You said: what time is it"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert finals[0].choices[0].finish_reason == "stop"
    assert finals[0].choices[0].delta.content is None
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


@pytest.mark.asyncio
async def test_stream_wire_format_ends_with_done(server: FakeOpenAIServer) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "a b"}], "stream": True}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient() as http:
        resp = await http.post(f"{server.base_url}/chat/completions", json=body, headers=headers)
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = resp.text.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    parsed = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert [p["choices"][0]["delta"] for p in parsed] == [
        {"role": "assistant", "content": ""},
        {"content": "You"},
        {"content": " said:"},
        {"content": " a"},
        {"content": " b"},
        {},
    ]
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.asyncio
async def test_wrong_api_key_gets_401_envelope(server: FakeOpenAIServer) -> None:
    async with client(server, api_key="sk-wrong") as sdk:
        with pytest.raises(openai.AuthenticationError) as info:
            await ask(sdk)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert info.value.type == "invalid_request_error"


@pytest.mark.asyncio
async def test_fail_next_two_500s_then_success(server: FakeOpenAIServer) -> None:
    server.configure(fail_next=2, fail_status=500)
    async with client(server) as sdk:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError) as info:
                await ask(sdk)
            assert info.value.type == "server_error"
        assert await ask(sdk) == "You said: what time is it"
    assert len(server.state.requests) == 3
    assert server.state.config.fail_next == 0


@pytest.mark.asyncio
async def test_503_maps_to_internal_server_error(server: FakeOpenAIServer) -> None:
    server.configure(fail_next=1, fail_status=503)
    async with client(server) as sdk:
        with pytest.raises(openai.InternalServerError) as info:
            await ask(sdk)
    assert info.value.status_code == 503


@pytest.mark.asyncio
async def test_429_raises_rate_limit_error_with_fast_retry_hint(server: FakeOpenAIServer) -> None:
    server.configure(fail_next=1, fail_status=429)
    async with client(server) as sdk:
        with pytest.raises(openai.RateLimitError) as info:
            await ask(sdk)
    assert info.value.type == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after-ms"] == "1"
    assert info.value.response.headers["retry-after"] == "0"


@pytest.mark.asyncio
async def test_sdk_retries_recover_from_one_429(server: FakeOpenAIServer) -> None:
    server.configure(fail_next=1, fail_status=429)
    started = time.monotonic()
    async with client(server, max_retries=2) as sdk:
        assert await ask(sdk) == "You said: what time is it"
    assert time.monotonic() - started < 0.4  # the retry-after-ms hint was honoured
    assert len(server.state.requests) == 2


@pytest.mark.asyncio
async def test_rate_limit_per_second(server: FakeOpenAIServer) -> None:
    server.configure(rate_limit_per_second=2)
    async with client(server) as sdk:
        await ask(sdk)
        await ask(sdk)
        with pytest.raises(openai.RateLimitError):
            await ask(sdk)


@pytest.mark.asyncio
async def test_latency_is_honoured(server: FakeOpenAIServer) -> None:
    server.configure(latency_ms=250)
    async with client(server) as sdk:
        started = time.monotonic()
        await ask(sdk)
        assert time.monotonic() - started >= 0.25
        started = time.monotonic()
        stream = await sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True
        )
        first = await stream.__anext__()
        assert time.monotonic() - started >= 0.25
        assert first.choices[0].delta.role == "assistant"
        await stream.close()


@pytest.mark.asyncio
async def test_chunk_delay_spreads_the_stream(server: FakeOpenAIServer) -> None:
    server.configure(chunk_delay_ms=30)
    async with client(server) as sdk:
        started = time.monotonic()
        stream = await sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True
        )
        _ = [c async for c in stream]
    assert time.monotonic() - started >= 6 * 0.03


@pytest.mark.asyncio
async def test_requests_are_recorded_in_order(server: FakeOpenAIServer) -> None:
    async with client(server) as sdk:
        await ask(sdk, temperature=0.2, max_tokens=50)
        await sdk.chat.completions.create(
            model="other", messages=[{"role": "user", "content": "second"}]
        )
    async with httpx.AsyncClient(base_url=server.base_url.removesuffix("/v1")) as http:
        recorded = (await http.get("/_fake/requests")).json()
    assert [r["messages"] for r in recorded] == [MESSAGES, [{"role": "user", "content": "second"}]]
    assert recorded[0]["temperature"] == 0.2
    assert recorded[0]["max_tokens"] == 50
    assert recorded == server.state.requests


@pytest.mark.asyncio
async def test_scripted_replies_then_template(server: FakeOpenAIServer) -> None:
    server.configure(replies=["one", "two"], reply_template="{model}|{n_messages}|{last_user}")
    async with client(server) as sdk:
        assert [await ask(sdk) for _ in range(3)] == ["one", "two", "fake-model|4|what time is it"]


@pytest.mark.asyncio
async def test_max_tokens_truncates_with_length(server: FakeOpenAIServer) -> None:
    async with client(server) as sdk:
        resp = await sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, max_completion_tokens=2
        )
    assert resp.choices[0].message.content == "You said:"
    assert resp.choices[0].finish_reason == "length"


@pytest.mark.asyncio
async def test_control_endpoints_and_models(server: FakeOpenAIServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url.removesuffix("/v1")) as http:
        new = (await http.post("/_fake/config", json={"reply_template": "hi {n_messages}"})).json()
        assert new["reply_template"] == "hi {n_messages}"
        assert new["api_key"] == API_KEY
        assert (await http.post("/_fake/config", json={"no_such_switch": 1})).status_code == 422
        async with client(server) as sdk:
            assert await ask(sdk) == "hi 4"
            models = await sdk.models.list()
            assert [m.id for m in models.data] == ["fake-model"]
        assert len((await http.get("/_fake/requests")).json()) == 1
        restored = (await http.post("/_fake/reset")).json()
        assert restored["reply_template"] == "You said: {last_user}"
        assert (await http.get("/_fake/requests")).json() == []


@pytest.mark.asyncio
async def test_hang_times_out_without_blocking_others_or_shutdown() -> None:
    async with (
        FakeOpenAIServer(FakeModelConfig(hang=True)) as srv,
        AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=0.3) as sdk,
    ):
        with pytest.raises(openai.APITimeoutError):
            await ask(sdk)
        # While a request is held, the server keeps answering everything else.
        pending = asyncio.create_task(ask(sdk, timeout=30))
        await asyncio.sleep(0.2)
        assert [m.id for m in (await sdk.models.list()).data] == ["fake-model"]
        assert len(srv.state.requests) == 2
        assert not pending.done()
        # A reset releases held requests (hang=True is this server's default, so it stays on).
        srv.state.reset()
        assert await asyncio.wait_for(pending, timeout=5) == "You said: what time is it"
        # A request still held when the server stops does not block the stop.
        pending = asyncio.create_task(ask(sdk, timeout=30))
        await asyncio.sleep(0.2)
        assert not pending.done()
        started = time.monotonic()
        await asyncio.to_thread(srv.stop)
        assert time.monotonic() - started < 3
        assert not srv.is_running
        # Stopping released it, and uvicorn's graceful shutdown let it finish.
        assert await asyncio.wait_for(pending, timeout=5) == "You said: what time is it"


def test_sync_start_stop_and_cli_subprocess() -> None:
    with FakeOpenAIServer() as srv:
        assert srv.is_running
        resp = httpx.post(
            f"{srv.base_url}/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}]},
        )
        assert resp.json()["choices"][0]["message"]["content"] == "You said: x"
    assert not srv.is_running

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.fakes.openai_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--api-key",
            "cli-key",
            "--latency-ms",
            "0",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert resp.json()["data"][0]["id"] == "fake-model"
        denied = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}]},
        )
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_api_key"
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM on itself.
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_header_on_429_and_503(server: FakeOpenAIServer, status: int) -> None:
    server.configure(fail_next=1, fail_status=status, retry_after="7")
    async with client(server) as sdk:
        with pytest.raises(openai.APIStatusError) as info:
            await ask(sdk)
    assert info.value.status_code == status
    assert info.value.response.headers["retry-after"] == "7"
    assert "retry-after-ms" not in info.value.response.headers


@pytest.mark.asyncio
async def test_retry_after_is_not_sent_on_other_statuses_and_hints_can_be_off(
    server: FakeOpenAIServer,
) -> None:
    server.configure(fail_next=1, fail_status=500, retry_after="7", retry_after_ms=2500)
    async with client(server) as sdk:
        with pytest.raises(openai.InternalServerError) as info:
            await ask(sdk)
        assert info.value.response.headers["retry-after-ms"] == "2500"
        assert info.value.response.headers["retry-after"] == "2"
        server.configure(fail_next=1, fail_status=429, retry_after=None, retry_after_ms=None)
        with pytest.raises(openai.RateLimitError) as info:
            await ask(sdk)
    headers = info.value.response.headers
    assert "retry-after" not in headers and "retry-after-ms" not in headers


@pytest.mark.asyncio
async def test_latencies_apply_per_request_then_latency_ms(server: FakeOpenAIServer) -> None:
    server.configure(latencies_ms=[300, 0], latency_ms=150)
    took = []
    async with client(server) as sdk:
        for _ in range(3):
            started = time.monotonic()
            await ask(sdk)
            took.append(time.monotonic() - started)
    assert took[0] >= 0.3
    assert took[1] < 0.15
    assert took[2] >= 0.15
    assert server.state.config.latencies_ms == []


@pytest.mark.asyncio
async def test_hang_next_holds_only_the_next_requests(server: FakeOpenAIServer) -> None:
    server.configure(hang_next=1)
    async with client(server, timeout=0.3) as sdk:
        with pytest.raises(openai.APITimeoutError):
            await ask(sdk)
        started = time.monotonic()
        assert await ask(sdk) == "You said: what time is it"
        assert time.monotonic() - started < 0.3
    assert len(server.state.requests) == 2
    assert server.state.config.hang_next == 0


@pytest.mark.asyncio
async def test_hang_next_is_released_by_release_hung(server: FakeOpenAIServer) -> None:
    server.configure(hang_next=1)
    async with client(server) as sdk:
        pending = asyncio.create_task(ask(sdk, timeout=30))
        await asyncio.sleep(0.2)
        assert not pending.done()
        server.state.release_hung()
        assert await asyncio.wait_for(pending, timeout=5) == "You said: what time is it"


@pytest.mark.asyncio
async def test_stream_fail_next_breaks_the_stream_with_an_error_event(
    server: FakeOpenAIServer,
) -> None:
    server.configure(stream_fail_next=1, stream_fail_after=2)
    async with client(server) as sdk:
        stream = await sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True
        )
        received: list[str] = []
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        assert "".join(received) == "You said:"
        assert "Injected stream failure" in info.value.message
        assert info.value.type == "server_error"
        # Only the next stream breaks.
        stream = await sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "You said: what time is it"


@pytest.mark.asyncio
async def test_stream_fail_after_zero_breaks_before_any_text(server: FakeOpenAIServer) -> None:
    server.configure(stream_fail_next=1)
    async with client(server) as sdk:
        stream = await sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True
        )
        received: list[str] = []
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == ""


def test_stream_raw_wire_format_of_a_broken_stream() -> None:
    with FakeOpenAIServer(FakeModelConfig(stream_fail_next=1, stream_fail_after=1)) as srv:
        resp = httpx.post(
            f"{srv.base_url}/chat/completions",
            json={"messages": [{"role": "user", "content": "x y"}], "stream": True},
        )
    events = [line.removeprefix("data: ") for line in resp.text.splitlines() if line]
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in events
    assert json.loads(events[1])["choices"][0]["delta"] == {"content": "You"}
    assert json.loads(events[-1]) == {
        "error": {
            "message": "Injected stream failure (fake).",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert len(events) == 3
