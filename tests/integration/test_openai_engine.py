"""OpenAIEngine over real HTTP against the project's fake OpenAI-compatible server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from services.brain.engines.base import EngineError, EngineRequest, EngineTurn
from services.brain.engines.openai_engine import OpenAIEngine
from services.brain.prompt import system_prompt
from services.fakes.openai_server import FakeModelConfig, FakeOpenAIServer

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

API_KEY = "sk-switchboard-test"
MODEL = "fake-model"


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(FakeModelConfig(api_key=API_KEY)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_model(model_server: FakeOpenAIServer) -> None:
    model_server.state.reset()


def make_engine(server: FakeOpenAIServer, **overrides: Any) -> OpenAIEngine:
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "model": MODEL,
        "base_url": server.base_url,
        "timeout_s": 10.0,
        "max_retries": 0,
        "turn_budget_s": 10.0,
    }
    return OpenAIEngine(**(options | overrides))


@pytest_asyncio.fixture
async def engine(model_server: FakeOpenAIServer) -> AsyncIterator[OpenAIEngine]:
    created = make_engine(model_server)
    yield created
    await created.aclose()


def request(user_text: str = "where is my parcel?", **fields: Any) -> EngineRequest:
    return EngineRequest(conversation_id="conv-1", channel="chat", user_text=user_text, **fields)


async def test_answer_is_the_model_reply(engine: OpenAIEngine) -> None:
    assert await engine.generate(request("where is my parcel?")) == "You said: where is my parcel?"


async def test_answer_is_stripped(engine: OpenAIEngine, model_server: FakeOpenAIServer) -> None:
    model_server.configure(replies=["  **Tracked** and on its way.  \n"])
    assert await engine.generate(request()) == "**Tracked** and on its way."


async def test_request_carries_system_prompt_history_in_order_then_user_text(
    engine: OpenAIEngine, model_server: FakeOpenAIServer
) -> None:
    history = [
        EngineTurn(role="user", text="I ordered shoes", channel="sms"),
        EngineTurn(role="assistant", text="Thanks, noted.", channel="sms"),
        EngineTurn(role="user", text="size 42", channel="chat"),
        EngineTurn(role="assistant", text="Got it.", channel="chat"),
    ]

    await engine.generate(request("when will they arrive?", history=history, summary="shoes"))

    (sent,) = model_server.state.requests
    assert sent["model"] == MODEL
    assert sent["messages"] == [
        {"role": "system", "content": system_prompt("chat", "shoes")},
        {"role": "user", "content": "I ordered shoes"},
        {"role": "assistant", "content": "Thanks, noted."},
        {"role": "user", "content": "size 42"},
        {"role": "assistant", "content": "Got it."},
        {"role": "user", "content": "when will they arrive?"},
    ]


async def test_system_prompt_follows_the_channel(
    engine: OpenAIEngine, model_server: FakeOpenAIServer
) -> None:
    await engine.generate(EngineRequest(conversation_id="c", channel="sms", user_text="hi"))

    system = model_server.state.requests[0]["messages"][0]
    assert system == {"role": "system", "content": system_prompt("sms")}
    assert "SMS" in system["content"]


@pytest.mark.parametrize("status", [429, 500])
async def test_recovers_from_transient_failures_within_max_retries(
    model_server: FakeOpenAIServer, status: int
) -> None:
    model_server.configure(fail_next=2, fail_status=status)
    engine = make_engine(model_server, max_retries=2)
    try:
        answer = await engine.generate(request("still there?"))
    finally:
        await engine.aclose()

    assert answer == "You said: still there?"
    assert len(model_server.state.requests) == 3


async def test_gives_up_with_engine_error_when_retries_run_out(
    model_server: FakeOpenAIServer,
) -> None:
    model_server.configure(fail_next=5, fail_status=500)
    engine = make_engine(model_server, max_retries=1)
    try:
        with pytest.raises(EngineError, match="InternalServerError"):
            await engine.generate(request())
    finally:
        await engine.aclose()

    assert len(model_server.state.requests) == 2


async def test_hanging_model_hits_the_turn_budget(model_server: FakeOpenAIServer) -> None:
    model_server.configure(hang=True)
    engine = make_engine(model_server, timeout_s=30.0, max_retries=2, turn_budget_s=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(EngineError, match="TimeoutError"):
            await engine.generate(request())
    finally:
        elapsed = time.monotonic() - started
        await engine.aclose()

    assert elapsed < 5.0
    assert len(model_server.state.requests) >= 1


async def test_wrong_api_key_is_an_engine_error(model_server: FakeOpenAIServer) -> None:
    engine = make_engine(model_server, api_key="sk-wrong", max_retries=2)
    try:
        with pytest.raises(EngineError, match="AuthenticationError"):
            await engine.generate(request())
    finally:
        await engine.aclose()

    assert len(model_server.state.requests) == 1  # a 401 is not retried


async def test_blank_completion_is_an_engine_error(
    engine: OpenAIEngine, model_server: FakeOpenAIServer
) -> None:
    model_server.configure(replies=["   "])
    with pytest.raises(EngineError, match="empty_completion"):
        await engine.generate(request())


async def test_unreachable_server_is_an_engine_error(model_server: FakeOpenAIServer) -> None:
    engine = make_engine(model_server, base_url="http://127.0.0.1:9/v1")
    try:
        with pytest.raises(EngineError, match="APIConnectionError"):
            await engine.generate(request())
    finally:
        await engine.aclose()
