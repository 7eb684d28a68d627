"""The one Kafka producer of a service, and how it heals itself.

aiokafka's idempotent producer has a failure it never leaves by itself: after a broker
outage of a minute or so its sequence numbers are stale, the broker answers
`OutOfOrderSequenceNumber` (or `UnknownProducerId`, an invalid epoch), the sender task dies,
and every later publish fails until someone restarts the process. `KafkaProducer` owns the
aiokafka producer instead of hiding it in a FastStream broker so it can:

- replace it (close, build a new one: a new producer id, fresh sequences) as soon as a fatal
  error is seen or the sender task has died;
- replace it too when publishes have kept failing for `rebuild_after_s` although the broker
  answers metadata requests again (a wedge we have no name for yet);
- start even while Kafka is down, and keep trying in the background;
- report every outcome to a `Dependency`, which is what readiness, liveness and the
  once-per-outage log lines read.

The publish that met the error still fails: the caller retries it through the usual
at-least-once path (ingress answers `unavailable`/503 and the client resends the same id;
brain and egress retry the record before committing). A message may therefore be written
twice, which every consumer already absorbs (inbound dedupe, deterministic reply ids,
egress ledgers); no customer sees it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    IllegalStateError,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    InvalidTxnState,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)
from prometheus_client import Counter

from services.common.backoff import Backoff, BackoffCounter
from services.common.health import Dependency
from services.common.kafka_backoff import throttle_metadata_retries
from shared.logs import get_logger

log = get_logger("kafka.producer")

PRODUCER_REBUILDS = Counter(
    "switchboard_kafka_producer_rebuilds_total", "Producers replaced after a fatal error", ["why"]
)

FATAL_PRODUCER_ERRORS: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    InvalidTxnState,
    ProducerFenced,
    ProducerClosed,
    IllegalStateError,
)
"""Errors after which this producer instance cannot deliver anything again."""


class ProducerUnavailable(KafkaConnectionError):  # type: ignore[misc]  # aiokafka is untyped
    """No working producer right now (Kafka down, or one being rebuilt). Retry later.

    A `KafkaError`, so every at-least-once path already treats it as infrastructure."""


class KafkaProducer:
    """An idempotent (`acks=all`) producer that replaces itself when it stops working."""

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str,
        *,
        request_timeout_ms: int = 15_000,
        retry_backoff_ms: int = 250,
        rebuild_after_s: float = 15.0,
        watch_interval_s: float = 1.0,
    ) -> None:
        self._options = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            # Said outright although idempotence implies it: a write is acknowledged only
            # once every in-sync replica has it (at least the topic's min.insync.replicas).
            "acks": "all",
            "enable_idempotence": True,
            "request_timeout_ms": request_timeout_ms,
            "retry_backoff_ms": retry_backoff_ms,
        }
        self.health = Dependency("kafka")
        self._rebuild_after_s = rebuild_after_s
        self._watch_interval_s = watch_interval_s
        self._start_timeout_s = request_timeout_ms / 1000
        # aiokafka fails a batch after request_timeout_ms in its buffer plus one request.
        self._publish_timeout_s = 2 * request_timeout_ms / 1000 + 1
        self._producer: AIOKafkaProducer | None = None
        self._replace_lock = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False
        self._replaced_at = 0.0
        # Replacements of a live producer since the last delivered publish (see wedged_for).
        self._futile_replacements = 0
        self._futile_since: float | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect if Kafka answers; either way, keep watching (and connecting) in the
        background. Never raises for an unreachable broker: the service starts not-ready."""
        await self._replace(None, "start")
        self._watchdog = asyncio.create_task(self._watch(), name="kafka-producer-watchdog")

    async def stop(self) -> None:
        """Flush what is pending (bounded) and close."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        producer, self._producer = self._producer, None
        if producer is not None:
            await _close_quietly(producer, self._start_timeout_s)

    @property
    def connected(self) -> bool:
        """A producer exists and its sender task is alive."""
        return self._producer is not None and not _sender_dead(self._producer)

    async def probe(self, timeout_s: float = 2.0) -> bool:
        """Does a broker answer a metadata request right now? (No publish, no side effect.)"""
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout_s)
        except (KafkaError, TimeoutError, OSError):
            return False
        return True

    # -- publishing ------------------------------------------------------------------------

    async def publish(
        self,
        value: bytes,
        topic: str,
        *,
        key: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        no_confirm: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        """Publish one record. Returns once Kafka acknowledged it (`acks=all`), or, with
        `no_confirm`, once it is queued. Raises a `KafkaError` when it cannot be done,
        `KafkaTimeoutError` after `timeout_s` (default: twice the request timeout).

        Give a caller's deadline here rather than cancelling the call from outside: a
        timeout seen here counts as a failure for readiness and healing, a cancel does not."""
        deadline_s = timeout_s if timeout_s is not None else self._publish_timeout_s
        producer = self._producer
        if producer is None or _sender_dead(producer):
            self.health.failed("ProducerUnavailable")
            # Yield before failing fast: a caller retrying in a loop would otherwise never
            # let the event loop run, and the replacement it waits for could never happen.
            await asyncio.sleep(0)
            raise ProducerUnavailable("no working Kafka producer")
        encoded = [(name, text.encode()) for name, text in (headers or {}).items()]
        try:
            # Bounded: a send caught in a producer that is being replaced (closed under it)
            # would otherwise wait forever on a metadata future nobody resolves.
            async with asyncio.timeout(deadline_s):
                delivery = await producer.send(topic, value, key=key, headers=encoded)
                if no_confirm:
                    delivery.add_done_callback(self._observe)
                    return
                await delivery
        except TimeoutError:
            self.health.failed("KafkaTimeoutError")
            raise KafkaTimeoutError(
                f"no answer from Kafka in {self._publish_timeout_s:.0f} s"
            ) from None
        except FATAL_PRODUCER_ERRORS as exc:
            self.health.failed(exc)
            await self._replace(producer, type(exc).__name__)
            raise
        except (KafkaError, OSError) as exc:
            self.health.failed(exc)
            raise
        self._delivered()

    def _delivered(self) -> None:
        self.health.succeeded()
        self._futile_replacements = 0
        self._futile_since = None

    def _observe(self, delivery: asyncio.Future[object]) -> None:
        if delivery.cancelled():
            return
        if delivery.exception() is None:
            self._delivered()
        else:
            self.health.failed(delivery.exception() or "unknown")

    # -- healing ---------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Connect when not connected; replace a producer whose sender died, or that still
        fails although the broker answers again (always the case after a long outage)."""
        # While Kafka does not answer, look (probe or reconnect) less and less often.
        waits = BackoffCounter(Backoff(self._watch_interval_s, cap_s=5.0, jitter="equal"))
        delay_s = self._watch_interval_s
        while not self._closed:
            await asyncio.sleep(delay_s)
            delay_s = self._watch_interval_s
            producer = self._producer
            if producer is None:
                reason = "reconnect"
            elif _sender_dead(producer):
                reason = "sender_died"
            elif not self.health.failing:
                waits.succeeded()
                continue
            elif not await self.probe():
                delay_s = waits.failed()
                continue
            else:
                waits.succeeded()
                now = time.monotonic()
                long_outage = self.health.failing_for >= self._rebuild_after_s
                if not long_outage or now - self._replaced_at < self._rebuild_after_s:
                    continue
                # The broker answers, we have failed for a while: after such a gap the
                # idempotent sequences are likely stale. Start over with a new producer id.
                reason = "stale_after_outage"
            if await self._replace(producer, reason):
                waits.succeeded()
            else:
                delay_s = waits.failed()

    @property
    def wedged_for(self) -> float:
        """Seconds since replacing the producer stopped helping (0 if it has not).

        One replacement after an outage is normal. A second one with no publish delivered
        in between, while the broker answers, means a new producer id does not cure it:
        something a restart of the process might, so `/livez` reads this."""
        if self._futile_since is None or self._futile_replacements < 2:
            return 0.0
        return time.monotonic() - self._futile_since

    @property
    def usable(self) -> bool:
        """Connected, and not in an outage long enough to need a new producer."""
        return self.connected and self.health.failing_for < self._rebuild_after_s

    async def _replace(self, broken: AIOKafkaProducer | None, why: str) -> bool:
        """Swap `broken` (or nothing) for a freshly started producer. Concurrent callers that
        saw the same broken producer share one replacement. Returns True when connected."""
        async with self._replace_lock:
            if self._producer is not broken:  # someone else already replaced it
                return self._producer is not None
            self._producer = None
            if broken is not None:
                PRODUCER_REBUILDS.labels(why).inc()
                log.warning("kafka.producer.replacing", reason=why)
                await _close_quietly(broken, 2.0)
            fresh = AIOKafkaProducer(**self._options)
            throttle_metadata_retries(fresh.client)
            try:
                # start() bootstraps and then waits for a producer id; bound both.
                await asyncio.wait_for(fresh.start(), self._start_timeout_s)
            except (KafkaError, TimeoutError, OSError) as exc:
                self.health.failed(exc)
                await _close_quietly(fresh, 2.0)
                return False
            self._producer = fresh
            self._replaced_at = time.monotonic()
            if broken is not None:
                self._futile_replacements += 1
                self._futile_since = self._futile_since or self._replaced_at
            # A new producer reached the broker and got a producer id: count that as the
            # end of the outage, or an idle service would stay not-ready with no traffic
            # to prove otherwise. The next failed publish reopens it.
            self.health.succeeded()
            if broken is not None:
                log.info("kafka.producer.replaced", reason=why)
            return True


def _sender_dead(producer: AIOKafkaProducer) -> bool:
    # aiokafka keeps no public flag for this: a finished sender task means every later send
    # would fail or hang (the accumulator is failed with the sender's fatal error).
    task = producer._sender.sender_task
    return task is not None and task.done()


async def _close_quietly(producer: AIOKafkaProducer, timeout_s: float) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), timeout_s)
