"""Retrying model calls: the codebase's one `RetryPolicy`, inside a per-turn budget.

Provider-neutral: an engine supplies the attempt (given its timeout) and a classifier that
turns the provider's exceptions into a `Failure`. The rules:

* timeouts, connection errors, 429 and 5xx are retried, other 4xx and empty completions
  are not;
* the wait after failed attempt n (1-based) is `uniform(0, min(cap_s, base_s * 2**(n-1)))`,
  unless
  the failure carries a server hint (`Retry-After` on 429/503), which is used instead;
* each attempt's timeout is `min(attempt_timeout_s, remaining budget)`;
* nothing ever sleeps past the budget: when the next wait would reach it, the call gives up
  at once (sleeping until the deadline only to fail would just delay the apology).

Which reason the final `EngineError` carries: `budget_exhausted` when another attempt was
allowed by `max_attempts` but the budget had no room for it (including an attempt whose
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
from services.common.backoff import RetryPolicy, Uniform
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
        if not failure.retryable or attempts >= policy.max_attempts:
            raise EngineError(failure.reason, attempts=attempts, detail=failure.detail) from cause
        # A server's hint is used as it is (a 429 asking for 2 s gets 2 s, not more).
        hint = failure.retry_after_s
        delay = hint if hint is not None else policy.delay_s(attempts, uniform=uniform)
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
