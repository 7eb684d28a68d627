"""What a service knows about its own dependencies: failing or not, since when, logged once.

Every path that talks to Kafka or Redis reports its outcome to a `Dependency`. That gives
three things from one place:
- readiness (`/readyz`) reads `failing` instead of guessing from a TCP connect;
- liveness (`/livez`) reads `failing_for`: a dependency that answers probes again while the
  service still fails on it is wedged, and an orchestrator should restart the process;
- logging: an outage is logged once when it starts (warning), as a summary of how many
  failures were suppressed at most every `summary_every_s`, and once when it clears (info),
  instead of once per retry of every message (the issue that wrote 2.3 M lines).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Gauge

from shared.logs import get_logger

log = get_logger("health")

DEPENDENCY_UP = Gauge(
    "switchboard_dependency_up", "1 while a dependency works for this service", ["dependency"]
)


class Dependency:
    """The observed state of one dependency (Kafka publishing, Kafka consuming, Redis)."""

    def __init__(
        self,
        name: str,
        *,
        summary_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._summary_every_s = summary_every_s
        self._clock = clock
        self._failing_since: float | None = None
        self._last_summary = 0.0
        self._suppressed = 0
        self._last_error = ""
        DEPENDENCY_UP.labels(name).set(1)

    @property
    def failing(self) -> bool:
        """True from the first failure until the next success."""
        return self._failing_since is not None

    @property
    def failing_for(self) -> float:
        """Seconds since the current outage began (0 when working)."""
        if self._failing_since is None:
            return 0.0
        return self._clock() - self._failing_since

    @property
    def last_error(self) -> str:
        """The exception type of the latest failure ("" when working)."""
        return self._last_error

    def succeeded(self) -> None:
        """Record a success; ends an outage (logged once, with its length)."""
        if self._failing_since is None:
            return
        log.info(
            "dependency.restored",
            dependency=self.name,
            outage_s=round(self.failing_for, 1),
            failures_suppressed=self._suppressed,
        )
        self._failing_since = None
        self._suppressed = 0
        self._last_error = ""
        DEPENDENCY_UP.labels(self.name).set(1)

    def failed(self, error: BaseException | str) -> None:
        """Record a failure; logs the start of an outage, then a summary now and then."""
        kind = error if isinstance(error, str) else type(error).__name__
        self._last_error = kind
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
            self._last_summary = now
            DEPENDENCY_UP.labels(self.name).set(0)
            log.warning("dependency.unavailable", dependency=self.name, error=kind)
            return
        self._suppressed += 1
        if now - self._last_summary >= self._summary_every_s:
            log.warning(
                "dependency.still_unavailable",
                dependency=self.name,
                error=kind,
                outage_s=round(now - self._failing_since, 1),
                failures_suppressed=self._suppressed,
            )
            self._last_summary = now
