"""The one backoff of the codebase: capped exponential, jittered, never shorter than a
server's `Retry-After`.

Attempt n (1-based) may wait up to `min(cap_s, base_s * 2**(n-1))`, the ceiling. Jitter:
- `full`: uniform in [0, ceiling] (AWS's "full jitter"); for retries of a shared provider,
  where spreading many clients out matters most;
- `equal`: uniform in [ceiling/2, ceiling]; for waits that should not collapse to nothing,
  such as reconnecting to a broker that is down.
Every retry loop (provider sends, the model, Kafka reconnects, consumers) asks one of these
for its delays instead of writing the formula again. `RetryPolicy` adds what a call to a
provider also needs: how many attempts, and how long all of them may take.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

Uniform = Callable[[float, float], float]
T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter."""

    base_s: float
    cap_s: float
    jitter: Literal["full", "equal"] = "full"

    def ceiling_s(self, attempt: int) -> float:
        """The longest wait after failed attempt `attempt` (1-based)."""
        return float(min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1)))

    def delay_s(
        self,
        attempt: int,
        retry_after_s: float | None = None,
        uniform: Uniform = random.uniform,
    ) -> float:
        """The wait after failed attempt `attempt`: jittered, at least `retry_after_s`."""
        ceiling = self.ceiling_s(attempt)
        low = 0.0 if self.jitter == "full" else ceiling / 2
        return max(float(uniform(low, ceiling)), retry_after_s or 0.0)


class BackoffCounter:
    """A `Backoff` for a loop that fails and recovers: counts failures since the last
    success (the next delay grows with them), and starts over on success."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.failures = 0

    def failed(self) -> float:
        """Record a failure; return how long to wait before trying again."""
        self.failures += 1
        return self.backoff.delay_s(self.failures)

    def succeeded(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry a call to a provider (Twilio, VoIPBin, the model): at most
    `max_attempts` attempts in all, full-jitter waits between them, never past `budget_s`
    from the first attempt (infinite: no time limit)."""

    max_attempts: int = 4
    base_s: float = 0.2
    cap_s: float = 5.0
    budget_s: float = math.inf

    @property
    def backoff(self) -> Backoff:
        """The backoff between attempts."""
        return Backoff(self.base_s, self.cap_s, jitter="full")

    def ceiling_s(self, attempt: int) -> float:
        """The longest wait after failed attempt `attempt` (1-based)."""
        return self.backoff.ceiling_s(attempt)

    def delay_s(
        self, attempt: int, retry_after_s: float | None = None, uniform: Uniform = random.uniform
    ) -> float:
        """The wait after failed attempt `attempt` (1-based), at least `retry_after_s`."""
        return self.backoff.delay_s(attempt, retry_after_s, uniform)


NO_RETRY = RetryPolicy(max_attempts=1)
"""One attempt, no retries."""


async def call_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[], Awaitable[T]],
    errors: type[E] | tuple[type[E], ...],
    retry_after: Callable[[E], float | None],
    *,
    retryable: Callable[[E], bool],
    on_retry: Callable[[E, int, float], None] | None = None,
) -> T:
    """`attempt()` until it returns, as `policy` allows: a failure in `errors` is retried when
    `retryable(error)`, after `policy.delay_s` (at least `retry_after(error)`), while attempts
    remain and the wait ends inside the budget; otherwise it is raised. `on_retry(error,
    attempt, delay)` is told before each wait (to log it)."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + policy.budget_s
    failures = 0
    while True:
        try:
            return await attempt()
        except errors as exc:
            failures += 1
            delay = policy.delay_s(failures, retry_after(exc))
            if (
                not retryable(exc)
                or failures >= policy.max_attempts
                or loop.time() + delay > give_up_at
            ):
                raise
            if on_retry is not None:
                on_retry(exc, failures, delay)
            await asyncio.sleep(delay)
