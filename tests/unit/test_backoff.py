"""The one backoff: ceilings double to a cap, jitter stays inside them, a server's
Retry-After is a floor, and a counter starts over after a success."""

from __future__ import annotations

import random

import pytest

from services.common.backoff import Backoff, BackoffCounter
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
