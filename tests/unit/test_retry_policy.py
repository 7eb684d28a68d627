"""The model retry loop, on a fake clock: backoff, jitter, Retry-After, budget, 4xx."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from services.brain.engines.base import EngineError
from services.brain.engines.retry import Failure, run_with_retries
from services.common.backoff import RetryPolicy
from services.common.retry_after import retry_after_s

pytestmark = pytest.mark.unit


class Boom(Exception):
    """A provider error carrying the failure the classifier should report."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


SERVER = Failure("server_error", True, detail="500")
RATE_LIMITED = Failure("rate_limited", True, detail="429")
BAD_REQUEST = Failure("client_error", False, detail="400")


def classify(exc: Exception) -> Failure | None:
    return exc.failure if isinstance(exc, Boom) else None


class FakeTime:
    """A clock that only moves when the code under test sleeps or an attempt takes time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """An attempt function: each call takes `took_s` (on the fake clock), then fails or answers."""

    def __init__(self, time: FakeTime, outcomes: list[Failure | str], took_s: float = 0.0):
        self.time, self.outcomes, self.took_s = time, outcomes, took_s
        self.timeouts: list[float] = []
        self.started_at: list[float] = []

    async def __call__(self, timeout_s: float) -> str:
        self.timeouts.append(timeout_s)
        self.started_at.append(self.time.now)
        self.time.now += min(self.took_s, timeout_s)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Failure):
            raise Boom(outcome)
        return outcome


class Jitter:
    """A `uniform` that records its ranges and returns a fixed fraction of the upper bound."""

    def __init__(self, fraction: float = 1.0) -> None:
        self.fraction = fraction
        self.ranges: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.ranges.append((low, high))
        return low + (high - low) * self.fraction


async def run(
    attempt: Callable[[float], Awaitable[str]],
    time: FakeTime,
    *,
    policy: RetryPolicy | None = None,
    budget_s: float = 30.0,
    attempt_timeout_s: float = 20.0,
    uniform: Callable[[float, float], float] | None = None,
) -> tuple[str, int]:
    return await run_with_retries(
        attempt,
        policy=policy or RetryPolicy(max_attempts=4, base_s=0.25, cap_s=4.0),
        budget_s=budget_s,
        attempt_timeout_s=attempt_timeout_s,
        classify=classify,
        clock=time.clock,
        sleep=time.sleep,
        uniform=uniform or Jitter(),
    )


def test_backoff_bound_doubles_from_base_up_to_cap() -> None:
    policy = RetryPolicy(max_attempts=11, base_s=0.25, cap_s=4.0)
    bounds = [policy.ceiling_s(n + 1) for n in range(8)]
    assert bounds == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_backoff_is_full_jitter_between_zero_and_the_bound() -> None:
    policy = RetryPolicy(max_attempts=11, base_s=0.25, cap_s=4.0)
    jitter = Jitter(fraction=0.5)
    assert [policy.delay_s(n + 1, uniform=jitter) for n in range(6)] == [
        0.125,
        0.25,
        0.5,
        1.0,
        2.0,
        2.0,
    ]
    assert jitter.ranges == [(0.0, b) for b in (0.25, 0.5, 1.0, 2.0, 4.0, 4.0)]

    rng = random.Random(7)  # the real jitter: spread over the whole range, never above it
    samples = [policy.delay_s(3, uniform=rng.uniform) for _ in range(2000)]
    assert all(0.0 <= s <= 1.0 for s in samples)
    assert min(samples) < 0.05 and max(samples) > 0.95


@pytest.mark.asyncio
async def test_transient_failures_are_retried_with_growing_backoff() -> None:
    time = FakeTime()
    attempt = Script(time, [SERVER, RATE_LIMITED, SERVER, "hello"])
    jitter = Jitter(fraction=1.0)

    assert await run(attempt, time, uniform=jitter) == ("hello", 4)
    assert time.sleeps == [0.25, 0.5, 1.0]
    assert jitter.ranges == [(0.0, 0.25), (0.0, 0.5), (0.0, 1.0)]


@pytest.mark.asyncio
async def test_success_first_time_does_not_sleep() -> None:
    time = FakeTime()
    assert await run(Script(time, ["hi"]), time) == ("hi", 1)
    assert time.sleeps == []


@pytest.mark.asyncio
async def test_retries_run_out_with_the_last_reason() -> None:
    time = FakeTime()
    attempt = Script(time, [SERVER, SERVER, RATE_LIMITED])
    policy = RetryPolicy(max_attempts=3, base_s=0.1, cap_s=1.0)

    with pytest.raises(EngineError) as info:
        await run(attempt, time, policy=policy)

    assert (info.value.reason, info.value.attempts) == ("rate_limited", 3)
    assert str(info.value) == "rate_limited"
    assert isinstance(info.value.__cause__, Boom)
    assert len(time.sleeps) == 2


@pytest.mark.asyncio
async def test_client_errors_are_not_retried() -> None:
    time = FakeTime()
    attempt = Script(time, [BAD_REQUEST, "never"])

    with pytest.raises(EngineError) as info:
        await run(attempt, time)

    assert (info.value.reason, info.value.attempts) == ("client_error", 1)
    assert time.sleeps == []
    assert len(attempt.timeouts) == 1


@pytest.mark.asyncio
async def test_retry_after_replaces_the_backoff() -> None:
    time = FakeTime()
    hinted = Failure("rate_limited", True, retry_after_s=1.5)
    jitter = Jitter()

    assert await run(Script(time, [hinted, "ok"]), time, uniform=jitter) == ("ok", 2)
    assert time.sleeps == [1.5]
    assert jitter.ranges == []  # no random wait was drawn


@pytest.mark.asyncio
async def test_retry_after_past_the_budget_gives_up_without_sleeping() -> None:
    time = FakeTime()
    hinted = Failure("server_error", True, retry_after_s=10.0)
    attempt = Script(time, [hinted, "too late"], took_s=1.0)

    with pytest.raises(EngineError) as info:
        await run(attempt, time, budget_s=5.0)

    assert (info.value.reason, info.value.attempts) == ("budget_exhausted", 1)
    assert time.sleeps == []
    assert time.now == 1001.0  # gave up right after the first attempt


@pytest.mark.asyncio
async def test_retry_after_that_fits_is_honoured_to_the_budget_edge() -> None:
    time = FakeTime()
    hinted = Failure("rate_limited", True, retry_after_s=3.9)
    attempt = Script(time, [hinted, "ok"], took_s=1.0)

    assert await run(attempt, time, budget_s=5.0) == ("ok", 2)
    assert time.sleeps == [3.9]
    assert attempt.timeouts[1] == pytest.approx(0.1)  # what was left of the budget


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(20))
async def test_budget_is_never_exceeded(seed: int) -> None:
    time = FakeTime()
    started = time.now
    attempt = Script(time, [SERVER], took_s=0.7)
    policy = RetryPolicy(max_attempts=51, base_s=0.3, cap_s=2.0)

    with pytest.raises(EngineError) as info:
        await run(
            attempt,
            time,
            policy=policy,
            budget_s=6.0,
            attempt_timeout_s=1.0,
            uniform=random.Random(seed).uniform,
        )

    assert info.value.reason == "budget_exhausted"
    assert info.value.attempts == len(attempt.timeouts) >= 2
    assert time.now - started <= 6.0
    # Each attempt got min(attempt timeout, what was left of the budget).
    for began, timeout in zip(attempt.started_at, attempt.timeouts, strict=True):
        assert timeout == pytest.approx(min(1.0, started + 6.0 - began))


@pytest.mark.asyncio
async def test_attempt_timeout_is_capped_by_the_remaining_budget() -> None:
    time = FakeTime()
    attempt = Script(time, [SERVER, SERVER, "ok"], took_s=2.0)

    result = await run(attempt, time, budget_s=5.0, attempt_timeout_s=20.0, uniform=Jitter(0))

    assert result == ("ok", 3)
    assert attempt.timeouts == [5.0, 3.0, 1.0]


@pytest.mark.asyncio
async def test_no_budget_means_no_attempt() -> None:
    time = FakeTime()
    attempt = Script(time, ["never"])

    with pytest.raises(EngineError) as info:
        await run(attempt, time, budget_s=0.0)

    assert (info.value.reason, info.value.attempts) == ("budget_exhausted", 0)
    assert attempt.timeouts == []


@pytest.mark.asyncio
async def test_a_slow_attempt_times_out_and_is_retried() -> None:
    calls: list[float] = []

    async def attempt(timeout_s: float) -> str:
        calls.append(timeout_s)
        if len(calls) == 1:
            await asyncio.sleep(5)  # cut off by the loop's per-attempt timeout
        return "second time lucky"

    policy = RetryPolicy(max_attempts=2, base_s=0.01, cap_s=0.01)
    result = await run_with_retries(
        attempt, policy=policy, budget_s=2.0, attempt_timeout_s=0.05, classify=classify
    )

    assert result == ("second time lucky", 2)
    assert calls == [0.05, 0.05]


@pytest.mark.asyncio
async def test_a_timeout_cut_short_by_the_budget_is_budget_exhausted() -> None:
    async def attempt(timeout_s: float) -> str:
        await asyncio.sleep(5)
        return "never"

    policy = RetryPolicy(max_attempts=4, base_s=0.01, cap_s=0.01)
    with pytest.raises(EngineError) as info:
        await run_with_retries(
            attempt, policy=policy, budget_s=0.1, attempt_timeout_s=10.0, classify=classify
        )
    assert (info.value.reason, info.value.attempts) == ("budget_exhausted", 1)
    assert isinstance(info.value.__cause__, TimeoutError)


@pytest.mark.asyncio
async def test_engine_error_from_the_attempt_is_final_and_counted() -> None:
    time = FakeTime()
    outcomes = iter([Boom(SERVER), EngineError("empty_completion")])

    async def attempt(timeout_s: float) -> str:
        raise next(outcomes)

    with pytest.raises(EngineError) as info:
        await run(attempt, time)
    assert (info.value.reason, info.value.attempts) == ("empty_completion", 2)


@pytest.mark.asyncio
async def test_unclassified_errors_propagate_unchanged() -> None:
    time = FakeTime()

    async def attempt(timeout_s: float) -> str:
        raise KeyError("a bug, not a model failure")

    with pytest.raises(KeyError):
        await run(attempt, time)
    assert time.sleeps == []


def test_parse_retry_after_prefers_milliseconds_then_seconds_then_dates() -> None:
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "7"}) == 0.25
    assert retry_after_s({"retry-after": "7"}) == 7.0
    assert retry_after_s({"retry-after": "1.5"}) == 1.5
    assert retry_after_s({"retry-after": "-3"}) == 0.0
    assert retry_after_s({}) is None
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({"retry-after-ms": "nan"}) is None
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    date = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert retry_after_s({"retry-after": date}, now=now.timestamp()) == 30.0
