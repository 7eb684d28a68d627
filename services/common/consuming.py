"""At-least-once consumption: the retry/dead-letter policy every consumer shares.

- A record that cannot be parsed is poison, and some failures are permanent (a provider
  refused the delivery for good): both are dead-lettered at once, with the reason.
- Infrastructure errors (Redis, Kafka, network) are retried with backoff for as long as it
  takes: the event is fine, the world is not, and dead-lettering it would lose ordering.
- Any other error is retried up to `max_attempts`, then dead-lettered so it cannot block its
  partition.
Only after one of those outcomes may the caller commit the record's offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from services.common.backoff import Backoff
from services.common.cancellation import raise_if_cancelling
from services.common.deadletter import DeadLetterPublisher
from shared.logs import ThrottledLog, get_logger

log = get_logger("consuming")
# While Redis or Kafka is down every in-flight record retries: one line per window, not per try.
_infrastructure_retry = ThrottledLog(log, "consume.retry.infrastructure")

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    KafkaError,
    OSError,
    TimeoutError,
)

EventT = TypeVar("EventT", bound=BaseModel)


class PermanentFailure(Exception):
    """Retrying cannot help (a refused delivery, a config error): park the record at once."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class PoisonEvent(PermanentFailure):
    """The record itself is bad."""


def parse_event(record: ConsumerRecord, model: type[EventT]) -> EventT:
    """Validate a record's value as `model`, or raise `PoisonEvent` with a short reason."""
    try:
        return model.model_validate_json(record.value or b"")
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(part) for part in errors[0]["loc"]) if errors else ""
        kind = errors[0]["type"] if errors else "invalid"
        detail = f"{model.__name__}: {where} {kind}"
        raise PoisonEvent("invalid_event", detail) from None


RETRY_BACKOFF = Backoff(base_s=0.2, cap_s=5.0, jitter="equal")


def backoff_s(attempt: int) -> float:
    """Jittered exponential backoff before retry number `attempt` (1-based)."""
    return RETRY_BACKOFF.delay_s(attempt)


async def process_reliably(
    record: ConsumerRecord,
    work: Callable[[], Awaitable[None]],
    dead_letters: DeadLetterPublisher,
    max_attempts: int,
) -> None:
    """Run `work` until it succeeds or the record is dead-lettered. Then commit is safe."""
    attempt = 0
    while True:
        raise_if_cancelling()  # a cancel lost inside a Redis command (gh-86296)
        attempt += 1
        try:
            await work()
            return
        except PermanentFailure as exc:
            await dead_letters.park(record, exc.reason, str(exc), attempt)
            return
        except INFRASTRUCTURE_ERRORS as exc:
            _infrastructure_retry.warning(error=type(exc).__name__, attempt=attempt)
        except Exception as exc:
            if attempt >= max_attempts:
                log.exception("consume.dead_letter", topic=record.topic, offset=record.offset)
                await dead_letters.park(
                    record, "processing_failed", f"{type(exc).__name__}: {exc}", attempt
                )
                return
            log.warning("consume.retry", error=type(exc).__name__, attempt=attempt)
        await asyncio.sleep(backoff_s(attempt))
