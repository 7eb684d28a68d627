"""Turns to durable outcomes: the brain's retry and dead-letter policy around `TurnProcessor`.

- A record that cannot be parsed is dead-lettered at once with the reason.
- A lost conversation lock and infrastructure errors (Redis, Kafka, network) are retried
  with backoff for as long as it takes: the event is fine and dead-lettering it would break
  the conversation's order.
- Any other failure is retried up to `max_attempts`, then every record of the turn is
  dead-lettered, so a poison message cannot block its conversation or partition.
Only after one of those outcomes does the scheduler mark the records finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import ConsumerRecord

from services.brain.double_texting import Turn
from services.brain.locks import LockLost
from services.brain.scheduler import Work
from services.brain.turns import TurnProcessor
from services.common.cancellation import raise_if_cancelling
from services.common.consuming import INFRASTRUCTURE_ERRORS, PoisonEvent, backoff_s, parse_event
from services.common.deadletter import DeadLetterPublisher
from shared.contracts import InboundMessage
from shared.logs import ThrottledLog, get_logger

log = get_logger("brain.worker")
# While Redis or Kafka is down every running turn retries: one line per window, not per try
# (the outage itself is logged once, by the dependency that failed).
_infrastructure_retry = ThrottledLog(log, "brain.turn.retry.infrastructure")


def parse_work(record: ConsumerRecord) -> Work:
    """A fetched record as schedulable work (poison is kept, to be dead-lettered in order)."""
    try:
        return Work(record, parse_event(record, InboundMessage))
    except PoisonEvent as exc:
        return Work(record, None, exc)


class TurnRunner:
    """Runs one scheduled turn until it is answered or dead-lettered."""

    def __init__(
        self, processor: TurnProcessor, dead_letters: DeadLetterPublisher, max_attempts: int
    ) -> None:
        self._processor = processor
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts

    async def __call__(self, batch: Sequence[Work], turn: Turn | None) -> None:
        for work in batch:
            if work.poison is not None:
                await self._dead_letters.park(
                    work.record, work.poison.reason, str(work.poison), attempts=1
                )
        if turn is None:
            return
        records = [work.record for work in batch if work.poison is None]
        attempt = 0
        while True:
            raise_if_cancelling()  # a cancel lost inside a Redis command (gh-86296)
            attempt += 1
            try:
                await self._processor.run(turn)
                return
            except LockLost:
                log.info("brain.turn.retry.lock_lost", attempt=attempt)
            except INFRASTRUCTURE_ERRORS as exc:
                _infrastructure_retry.warning(error=type(exc).__name__)
            except Exception as exc:
                if attempt >= self._max_attempts:
                    log.exception("brain.turn.dead_letter", attempts=attempt)
                    await self._park(records, f"{type(exc).__name__}: {exc}", attempt)
                    return
                log.warning("brain.turn.retry", error=type(exc).__name__, attempt=attempt)
            await asyncio.sleep(backoff_s(attempt))

    async def _park(self, records: Sequence[ConsumerRecord], error: str, attempts: int) -> None:
        for record in records:
            await self._dead_letters.park(record, "processing_failed", error, attempts)
