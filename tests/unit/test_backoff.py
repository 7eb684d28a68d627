"""The one backoff: ceilings double to a cap, jitter stays inside them, a server's
Retry-After is a floor, and a counter starts over after a success."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from services.common.backoff import Backoff, BackoffCounter, RetryPolicy, call_with_retries
from services.common.kafka_backoff import METADATA_BACKOFF

pytestmark = pytest.mark.unit


def test_ceilings_double_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.25, cap_s=5.0)
    assert [backoff.ceiling_s(n) for n in range(1, 9)] == [0.25, 0.5, 1, 2, 4, 5, 5, 5]
    assert backoff.ceiling_s(0) == 0.25  # attempt numbers start at 1; 0 is not a shortcut


@pytest.mark.parametrize(("jitter", "low_share"), [("full", 0.0), ("equal", 0.5)])
def test_jitter_stays_between_its_floor_and_the_ceiling(jitter: str, low_share: float) -> None:
    backoff = Backoff(base_s=1.0, cap_s=8.0, jitter=jitter)  # type: ignore[arg-type]
    rng = random.Random(7)
    for attempt in range(1, 7):
        ceiling = backoff.ceiling_s(attempt)
        delays = [backoff.delay_s(attempt, uniform=rng.uniform) for _ in range(500)]
        assert min(delays) >= low_share * ceiling
        assert max(delays) <= ceiling
        # Jitter really spreads: the draws cover most of the allowed range.
        assert max(delays) - min(delays) > 0.8 * (1 - low_share) * ceiling


def test_retry_after_is_a_floor_never_a_ceiling() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0)
    assert backoff.delay_s(1, retry_after_s=7.0) == 7.0
    assert backoff.delay_s(1, retry_after_s=0.0) <= 0.1
    assert backoff.delay_s(5, retry_after_s=None, uniform=lambda low, high: high) == 1.0


def test_a_counter_grows_with_failures_and_starts_over_after_a_success() -> None:
    counter = BackoffCounter(Backoff(base_s=1.0, cap_s=4.0, jitter="equal"))
    delays = [counter.failed() for _ in range(5)]
    ceilings = [1, 2, 4, 4, 4]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    counter.succeeded()
    assert counter.failed() <= 1.0


def test_kafka_metadata_retries_wait_a_quarter_second_growing_to_five() -> None:
    assert METADATA_BACKOFF.ceiling_s(1) == 0.25 and METADATA_BACKOFF.ceiling_s(20) == 5.0


def test_the_retry_after_parser_refuses_what_it_cannot_trust() -> None:
    from services.common.retry_after import retry_after_s

    assert retry_after_s({"retry-after": "inf"}) is None
    assert retry_after_s({"retry-after": "nan"}) is None
    # A date without a zone (-0000) is no HTTP date; the old parser raised TypeError on it.
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"}) is None
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past


class Flaky(Exception):
    def __init__(self, retryable: bool = True, retry_after_s: float | None = None) -> None:
        super().__init__("flaky")
        self.retryable = retryable
        self.retry_after_s = retry_after_s


def failing(*errors: Exception) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An attempt that raises `errors` in turn, then returns "ok"; and its call count."""
    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        if calls[0] <= len(errors):
            raise errors[calls[0] - 1]
        return "ok"

    return attempt, calls


async def retried(policy: RetryPolicy, attempt: Callable[[], Awaitable[str]]) -> str:
    return await call_with_retries(
        policy,
        attempt,
        Flaky,
        retry_after=lambda exc: exc.retry_after_s,
        retryable=lambda exc: exc.retryable,
    )


@pytest.mark.asyncio
async def test_call_with_retries_retries_until_it_succeeds() -> None:
    attempt, calls = failing(Flaky(), Flaky())
    assert await retried(RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.001), attempt) == "ok"
    assert calls == [3]


@pytest.mark.asyncio
async def test_call_with_retries_stops_at_max_attempts_and_on_a_final_error() -> None:
    attempt, calls = failing(Flaky(), Flaky(), Flaky())
    with pytest.raises(Flaky):
        await retried(RetryPolicy(max_attempts=2, base_s=0.001, cap_s=0.001), attempt)
    assert calls == [2]
    attempt, calls = failing(Flaky(retryable=False))
    with pytest.raises(Flaky):
        await retried(RetryPolicy(max_attempts=5, base_s=0.001, cap_s=0.001), attempt)
    assert calls == [1]


@pytest.mark.asyncio
async def test_call_with_retries_gives_up_at_once_when_the_wait_would_pass_the_budget() -> None:
    # Retry-After of 30 s against a 1 s budget: raised now, not after a 30 s sleep.
    attempt, calls = failing(Flaky(retry_after_s=30.0))
    policy = RetryPolicy(max_attempts=5, base_s=0.001, cap_s=0.001, budget_s=1.0)
    async with asyncio.timeout(1.0):
        with pytest.raises(Flaky):
            await retried(policy, attempt)
    assert calls == [1]
