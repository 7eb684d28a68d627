"""The one retry policy for model calls: full-jitter backoff inside a per-turn budget.

Provider-neutral: an engine supplies the attempt (given its timeout) and a classifier that
turns the provider's exceptions into a `Failure`. The rules:

* timeouts, connection errors, 429 and 5xx are retried, other 4xx and empty completions
  are not;
* the wait before retry n (0-based) is `uniform(0, min(cap_s, base_s * 2**n))`, unless
  the failure carries a server hint (`Retry-After` on 429/503), which is used instead;
* each attempt's timeout is `min(attempt_timeout_s, remaining budget)`;
* nothing ever sleeps past the budget: when the next wait would reach it, the call gives up
  at once (sleeping until the deadline only to fail would just delay the apology).

Which reason the final `EngineError` carries: `budget_exhausted` when another attempt was
allowed by `max_retries` but the budget had no room for it (including an attempt whose
timeout was cut short by the budget); otherwise the reason of the last failure (retries
used up, or a failure that is not retried).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from services.brain.engines.base import EngineError, FailureReason
from services.common.backoff import Backoff, Uniform
from shared.logs import get_logger

log = get_logger("brain.engine")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as the retry loop sees it."""

    reason: FailureReason
    retryable: bool
    retry_after_s: float | None = None
    detail: str = ""


Classifier = Callable[[Exception], Failure | None]
"""Maps an attempt's exception to a `Failure`; None means "not a model failure": re-raise."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait in between (full jitter, doubling)."""

    max_retries: int
    base_s: float
    cap_s: float

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.base_s, self.cap_s, jitter="full")

    def backoff_bound_s(self, retry: int) -> float:
        """Longest wait before retry `retry` (0 for the first retry)."""
        return self.backoff.ceiling_s(retry + 1)

    def backoff_s(self, retry: int, uniform: Uniform = random.uniform) -> float:
        """A full-jitter wait before retry `retry`."""
        return self.backoff.delay_s(retry + 1, uniform=uniform)

    def delay_s(self, failure: Failure, retry: int, uniform: Uniform = random.uniform) -> float:
        """The wait before retry `retry`: the server's hint if it gave one, else backoff."""
        if failure.retry_after_s is not None:
            return failure.retry_after_s
        return self.backoff_s(retry, uniform)


async def run_with_retries(
    attempt: Callable[[float], Awaitable[T]],
    *,
    policy: RetryPolicy,
    budget_s: float,
    attempt_timeout_s: float,
    classify: Classifier,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    uniform: Uniform = random.uniform,
) -> tuple[T, int]:
    """Run `attempt(timeout_s)` until it succeeds; return its result and the attempts made.

    Raises `EngineError` (see the module docstring for its reason). An `EngineError` raised
    by the attempt itself (say, an empty completion) is final and gets the attempt count.
    Exceptions the classifier does not recognise propagate unchanged.
    """
    deadline = clock() + budget_s
    attempts = 0
    last: Failure | None = None
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            detail = last.detail if last else "no time left for a first attempt"
            raise EngineError("budget_exhausted", attempts=attempts, detail=detail)
        attempts += 1
        timeout_s = min(attempt_timeout_s, remaining)
        try:
            async with asyncio.timeout(timeout_s):
                return await attempt(timeout_s), attempts
        except EngineError as exc:
            exc.attempts = attempts
            raise
        except TimeoutError as exc:
            failure = Failure("timeout", True, detail=f"no answer within {timeout_s:.2f}s")
            cause: Exception = exc
        except Exception as exc:
            classified = classify(exc)
            if classified is None:
                raise
            failure, cause = classified, exc
        last = failure
        if not failure.retryable or attempts > policy.max_retries:
            raise EngineError(failure.reason, attempts=attempts, detail=failure.detail) from cause
        delay = policy.delay_s(failure, attempts - 1, uniform)
        if delay >= deadline - clock():
            raise EngineError(
                "budget_exhausted", attempts=attempts, detail=failure.detail
            ) from cause
        log.info(
            "brain.engine.retrying",
            reason=failure.reason,
            attempt=attempts,
            delay_s=round(delay, 3),
            server_hint=failure.retry_after_s is not None,
        )
        await sleep(delay)
