"""OpenAIEngine over real HTTP against the project's fake OpenAI-compatible server.

Covers the retry policy end to end (statuses, Retry-After, timeouts, the turn budget),
streaming and summaries. Never talks to a real provider.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from services.brain.engines.base import EngineError, EngineRequest, EngineTurn
from services.brain.engines.openai_engine import OpenAIEngine
from services.brain.hangup import HANGUP_MARKER
from services.brain.prompt import summary_input, summary_instructions, system_prompt
from services.fakes.openai_server import FakeModelConfig, FakeOpenAIServer
from shared.contracts import TextFormat

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
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
    }
    return OpenAIEngine(**(options | overrides))


@pytest_asyncio.fixture
async def engine(model_server: FakeOpenAIServer) -> AsyncIterator[OpenAIEngine]:
    created = make_engine(model_server)
    yield created
    await created.aclose()


@contextlib.asynccontextmanager
async def engine_with(server: FakeOpenAIServer, **overrides: Any) -> AsyncIterator[OpenAIEngine]:
    created = make_engine(server, **overrides)
    try:
        yield created
    finally:
        await created.aclose()


def request(user_text: str = "where is my parcel?", **fields: Any) -> EngineRequest:
    return EngineRequest(conversation_id="conv-1", channel="chat", user_text=user_text, **fields)


async def failure(engine: OpenAIEngine, req: EngineRequest | None = None) -> EngineError:
    with pytest.raises(EngineError) as info:
        await engine.generate(req or request())
    return info.value


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
        {"role": "system", "content": system_prompt(TextFormat.MARKDOWN, "shoes")},
        {"role": "user", "content": "I ordered shoes"},
        {"role": "assistant", "content": "Thanks, noted."},
        {"role": "user", "content": "size 42"},
        {"role": "assistant", "content": "Got it."},
        {"role": "user", "content": "when will they arrive?"},
    ]


@pytest.mark.parametrize(
    ("channel", "text_format", "hint"),
    [
        ("sms", TextFormat.GSM7, "no markdown"),
        ("chat", TextFormat.MARKDOWN, "markdown is fine"),
        ("voice", TextFormat.SPEAKABLE, HANGUP_MARKER),
        ("kiosk", TextFormat.SPEAKABLE, HANGUP_MARKER),  # any channel: the format decides
        ("kiosk", TextFormat.PLAIN, "no markdown"),
    ],
)
async def test_system_prompt_follows_the_text_format(
    engine: OpenAIEngine,
    model_server: FakeOpenAIServer,
    channel: str,
    text_format: TextFormat,
    hint: str,
) -> None:
    await engine.generate(
        EngineRequest(conversation_id="c", channel=channel, user_text="hi", text_format=text_format)
    )

    system = model_server.state.requests[0]["messages"][0]
    assert system == {"role": "system", "content": system_prompt(text_format)}
    assert hint in system["content"]


async def test_sdk_retries_are_off_so_our_policy_is_the_only_one(
    engine: OpenAIEngine, model_server: FakeOpenAIServer
) -> None:
    model_server.configure(fail_next=1, fail_status=500)
    error = await failure(engine)  # max_retries=0: one request, whatever the SDK's default
    assert (error.reason, error.attempts) == ("server_error", 1)
    assert len(model_server.state.requests) == 1


@pytest.mark.parametrize(("status", "reason"), [(429, "rate_limited"), (500, "server_error")])
async def test_recovers_from_transient_failures_within_max_retries(
    model_server: FakeOpenAIServer, status: int, reason: str
) -> None:
    model_server.configure(fail_next=2, fail_status=status, retry_after_ms=None)
    async with engine_with(model_server, max_retries=2) as engine:
        assert await engine.generate(request("still there?")) == "You said: still there?"
    assert len(model_server.state.requests) == 3


async def test_429_then_success_takes_two_attempts(model_server: FakeOpenAIServer) -> None:
    model_server.configure(fail_next=1, fail_status=429)
    async with engine_with(model_server, max_retries=3) as engine:
        assert await engine.generate(request("hi")) == "You said: hi"
    assert len(model_server.state.requests) == 2


async def test_retries_run_out_with_the_last_reason(model_server: FakeOpenAIServer) -> None:
    model_server.configure(fail_next=5, fail_status=502)
    async with engine_with(model_server, max_retries=2) as engine:
        error = await failure(engine)
    assert (error.reason, error.attempts, str(error)) == ("server_error", 3, "server_error")
    assert "502" in error.detail
    assert len(model_server.state.requests) == 3


async def test_5xx_past_the_budget_is_budget_exhausted(model_server: FakeOpenAIServer) -> None:
    model_server.configure(fail_next=1000, fail_status=500, retry_after_ms=None)
    options = {"max_retries": 1000, "backoff_base_s": 0.1, "backoff_cap_s": 0.2}
    # Counted by its own text: on a loaded machine a request of an earlier test can still
    # reach the shared fake after its reset.
    text = f"budget check {uuid.uuid4().hex}"
    async with engine_with(model_server, turn_budget_s=1.0, **options) as engine:
        started = time.monotonic()
        error = await failure(engine, request(text))
        elapsed = time.monotonic() - started
    ours = [r for r in model_server.state.requests if text in json.dumps(r["messages"])]
    assert error.reason == "budget_exhausted"
    assert error.attempts == len(ours) >= 3
    assert elapsed <= 1.0 + 0.1  # never waits past the budget (plus a little scheduling)


async def test_request_budget_overrides_the_turn_budget(model_server: FakeOpenAIServer) -> None:
    model_server.configure(hang=True)
    async with engine_with(model_server, max_retries=3, turn_budget_s=30.0) as engine:
        started = time.monotonic()
        error = await failure(engine, request(budget_s=0.4))
        elapsed = time.monotonic() - started
    assert error.reason == "budget_exhausted"
    assert 0.35 <= elapsed < 1.5


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_errors_are_not_retried(model_server: FakeOpenAIServer, status: int) -> None:
    model_server.configure(fail_next=3, fail_status=status)
    async with engine_with(model_server, max_retries=3) as engine:
        error = await failure(engine)
    assert (error.reason, error.attempts) == ("client_error", 1)
    assert len(model_server.state.requests) == 1


async def test_wrong_api_key_is_a_client_error(model_server: FakeOpenAIServer) -> None:
    async with engine_with(model_server, api_key="sk-wrong", max_retries=2) as engine:
        error = await failure(engine)
    assert (error.reason, error.attempts) == ("client_error", 1)
    assert "AuthenticationError" in error.detail
    assert len(model_server.state.requests) == 1


async def test_retry_after_is_honoured(model_server: FakeOpenAIServer) -> None:
    model_server.configure(fail_next=1, fail_status=503, retry_after="1")
    async with engine_with(model_server, max_retries=2) as engine:
        started = time.monotonic()
        assert await engine.generate(request("hi")) == "You said: hi"
        elapsed = time.monotonic() - started
    assert elapsed >= 1.0  # the backoff alone would be at most 10 ms
    assert len(model_server.state.requests) == 2


async def test_retry_after_beyond_the_budget_gives_up_at_once(
    model_server: FakeOpenAIServer,
) -> None:
    model_server.configure(fail_next=1, fail_status=429, retry_after="30")
    async with engine_with(model_server, max_retries=2, turn_budget_s=5.0) as engine:
        started = time.monotonic()
        error = await failure(engine)
        elapsed = time.monotonic() - started
    assert (error.reason, error.attempts) == ("budget_exhausted", 1)
    assert elapsed < 1.0
    assert len(model_server.state.requests) == 1


async def test_timeout_is_retried(model_server: FakeOpenAIServer) -> None:
    model_server.configure(hang_next=1)
    async with engine_with(model_server, timeout_s=0.3, max_retries=1) as engine:
        started = time.monotonic()
        assert await engine.generate(request("hi")) == "You said: hi"
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    assert len(model_server.state.requests) == 2


async def test_timeouts_run_out_as_timeout(model_server: FakeOpenAIServer) -> None:
    model_server.configure(hang=True)
    async with engine_with(model_server, timeout_s=0.2, max_retries=1) as engine:
        error = await failure(engine)
    assert (error.reason, error.attempts) == ("timeout", 2)
    assert len(model_server.state.requests) == 2


async def test_hanging_model_hits_the_turn_budget(model_server: FakeOpenAIServer) -> None:
    model_server.configure(hang=True)
    async with engine_with(model_server, timeout_s=30.0, max_retries=2, turn_budget_s=0.5) as eng:
        started = time.monotonic()
        error = await failure(eng)
        elapsed = time.monotonic() - started
    assert (error.reason, error.attempts) == ("budget_exhausted", 1)
    assert elapsed < 2.0


async def test_blank_completion_is_an_engine_error(
    model_server: FakeOpenAIServer,
) -> None:
    model_server.configure(replies=["   ", "never used"])
    async with engine_with(model_server, max_retries=3) as engine:
        error = await failure(engine)
    assert (error.reason, error.attempts) == ("empty_completion", 1)
    assert len(model_server.state.requests) == 1


async def test_unreachable_server_is_a_connection_error(model_server: FakeOpenAIServer) -> None:
    async with engine_with(model_server, base_url="http://127.0.0.1:9/v1", max_retries=1) as eng:
        error = await failure(eng)
    assert (error.reason, error.attempts) == ("connection", 2)


async def collect(engine: OpenAIEngine, req: EngineRequest) -> list[str]:
    async with contextlib.aclosing(engine.stream(req)) as deltas:
        return [delta async for delta in deltas]


async def test_stream_deltas_concatenate_to_the_reply(
    engine: OpenAIEngine, model_server: FakeOpenAIServer
) -> None:
    model_server.configure(replies=["Your parcel left the depot this morning."])
    history = [EngineTurn(role="user", text="hi", channel="sms")]
    deltas = await collect(engine, request("where is it?", history=history, summary="parcel"))

    assert "".join(deltas) == "Your parcel left the depot this morning."
    assert len(deltas) == 7  # one per word, as the fake streams
    (sent,) = model_server.state.requests
    assert sent["stream"] is True
    assert sent["messages"][0] == {
        "role": "system",
        "content": system_prompt(TextFormat.MARKDOWN, "parcel"),
    }
    assert sent["messages"][1:] == [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "where is it?"},
    ]


async def test_stream_matches_generate(
    engine: OpenAIEngine, model_server: FakeOpenAIServer
) -> None:
    model_server.configure(replies=["  Leading blanks go.", "  Leading blanks go."])
    assert "".join(await collect(engine, request())) == await engine.generate(request())


async def test_stream_retries_before_the_first_delta(model_server: FakeOpenAIServer) -> None:
    model_server.configure(fail_next=1, fail_status=429, stream_fail_next=1, stream_fail_after=0)
    async with engine_with(model_server, max_retries=2) as engine:
        deltas = await collect(engine, request("hi"))
    assert "".join(deltas) == "You said: hi"
    # A 429, then a stream that broke before any text, then the answer.
    assert len(model_server.state.requests) == 3


async def test_stream_failure_after_a_delta_is_not_retried(
    model_server: FakeOpenAIServer,
) -> None:
    model_server.configure(stream_fail_next=1, stream_fail_after=2)
    async with engine_with(model_server, max_retries=3) as engine:
        received: list[str] = []
        with pytest.raises(EngineError) as info:
            async for delta in engine.stream(request("hi")):
                received.append(delta)
    assert "".join(received) == "You said:"
    assert (info.value.reason, info.value.attempts) == ("server_error", 1)
    assert len(model_server.state.requests) == 1


async def test_stream_that_stalls_mid_way_times_out(model_server: FakeOpenAIServer) -> None:
    model_server.configure(chunk_delay_ms=400)
    async with engine_with(model_server, timeout_s=0.6, max_retries=3) as engine:
        received: list[str] = []
        with pytest.raises(EngineError) as info:
            async for delta in engine.stream(request("one two three four")):
                received.append(delta)
    assert received  # some text arrived before the attempt's time ran out
    assert info.value.reason == "timeout"
    assert len(model_server.state.requests) == 1


async def test_stream_gives_up_like_generate(model_server: FakeOpenAIServer) -> None:
    model_server.configure(fail_next=10, fail_status=400)
    async with engine_with(model_server, max_retries=3) as engine:
        with pytest.raises(EngineError) as info:
            await collect(engine, request())
    assert (info.value.reason, info.value.attempts) == ("client_error", 1)


SUMMARY_TURNS = [
    EngineTurn(role="user", text="Hi, I'm Ana, my router is broken", channel="sms"),
    EngineTurn(role="assistant", text="Sorry to hear that, Ana.", channel="sms"),
    EngineTurn(role="user", text="Can someone come tomorrow?", channel="voice"),
]


async def test_summarize_sends_the_summary_prompt_and_tagged_turns(
    engine: OpenAIEngine, model_server: FakeOpenAIServer
) -> None:
    model_server.configure(replies=["Ana (sms) has a broken router; asked by phone for a visit."])
    summary = await engine.summarize("Customer since 2020.", SUMMARY_TURNS, 300)

    assert summary == "Ana (sms) has a broken router; asked by phone for a visit."
    (sent,) = model_server.state.requests
    assert sent["messages"] == [
        {"role": "system", "content": summary_instructions(300)},
        {"role": "user", "content": summary_input("Customer since 2020.", SUMMARY_TURNS)},
    ]
    assert "300 characters" in sent["messages"][0]["content"]
    user = sent["messages"][1]["content"]
    assert "Customer since 2020." in user
    assert "[sms] customer: Hi, I'm Ana, my router is broken" in user
    assert "[voice] customer: Can someone come tomorrow?" in user
    assert isinstance(sent["max_tokens"], int) and sent["max_tokens"] > 0


async def test_summarize_is_trimmed_to_max_chars_keeping_the_newest(
    engine: OpenAIEngine, model_server: FakeOpenAIServer
) -> None:
    long = " ".join(f"Fact {i} about the customer." for i in range(15))
    model_server.configure(replies=[long])

    summary = await engine.summarize("", SUMMARY_TURNS, 300)

    assert len(long) > 300
    assert 0 < len(summary) <= 300
    assert summary.startswith("Fact ")  # cut at a sentence start
    assert summary.endswith("Fact 14 about the customer.")
    assert model_server.state.requests[0]["max_tokens"] == 100


async def test_summarize_retries_then_raises_engine_error(model_server: FakeOpenAIServer) -> None:
    model_server.configure(fail_next=1, fail_status=500)
    async with engine_with(model_server, max_retries=1) as engine:
        assert await engine.summarize("", SUMMARY_TURNS, 200)
        model_server.configure(fail_next=5, fail_status=500)
        with pytest.raises(EngineError) as info:
            await engine.summarize("", SUMMARY_TURNS, 200)
    assert (info.value.reason, info.value.attempts) == ("server_error", 2)
    assert len(model_server.state.requests) == 4


async def test_summarize_without_new_turns_does_not_call_the_model(
    engine: OpenAIEngine, model_server: FakeOpenAIServer
) -> None:
    assert await engine.summarize("Ana, broken router.", [], 100) == "Ana, broken router."
    assert model_server.state.requests == []


async def test_summaries_get_their_own_smaller_budget(model_server: FakeOpenAIServer) -> None:
    model_server.configure(hang=True)
    async with engine_with(model_server, turn_budget_s=0.8, max_retries=3) as engine:
        started = time.monotonic()
        with pytest.raises(EngineError) as info:
            await engine.summarize("", SUMMARY_TURNS, 200)
        elapsed = time.monotonic() - started
    assert info.value.reason == "budget_exhausted"
    assert 0.35 <= elapsed < 0.8  # half the turn budget by default
