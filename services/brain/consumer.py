"""The brain's consumer loop on aiokafka: fetch, schedule per partition, commit safely.

Why not a FastStream subscriber here: it hands records to the handler one at a time per
partition (or, with `max_workers`, concurrently but without ordered commits). The brain needs
both concurrency across conversations and commits that never pass an unfinished record, so
it owns this small loop (publishing goes through `services.common.producer`).

- Fetched records go to their partition's `PartitionScheduler`.
- A committer commits each partition's finished prefix every `commit_interval_s` (and on
  revocation and shutdown). A crash redoes at most that much finished work, idempotently.
- When too many records are buffered, fetching pauses (backpressure) and resumes at half.
- On revocation each revoked partition is drained for `drain_timeout_s`, its finished prefix
  committed, and the rest abandoned for the new owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Gauge

from services.brain.double_texting import DoubleTextingPolicy
from services.brain.scheduler import PartitionScheduler, TurnHandler, Work
from services.common.health import Dependency
from services.common.kafka_backoff import throttle_metadata_retries
from shared.logs import get_logger

log = get_logger("brain.consumer")

COMMIT_FAILING_UNHEALTHY_S = 30.0
"""Refused commits for this long make the consumer not ready (a rebalance takes seconds)."""

IN_FLIGHT = Gauge("switchboard_brain_records_in_flight", "Fetched records not yet committable")

Parse = Callable[[ConsumerRecord], Work]


class KeyOrderedConsumer:
    """Consumes one topic in a consumer group with key-ordered concurrency."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        client_id: str,
        group_instance_id: str | None = None,
        session_timeout_ms: int = 10_000,
        parse: Parse,
        handle: TurnHandler,
        policy: DoubleTextingPolicy,
        max_in_flight: int,
        drain_timeout_s: float,
        commit_interval_s: float = 0.2,
    ) -> None:
        self._topic = topic
        self._parse = parse
        self._handle = handle
        self._policy = policy
        self._slots = asyncio.Semaphore(max_in_flight)
        self._max_buffered = max_in_flight * 2
        self._drain_timeout_s = drain_timeout_s
        self._commit_interval_s = commit_interval_s
        self._schedulers: dict[TopicPartition, PartitionScheduler] = {}
        self._paused = False
        self._commit_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._options = {
            "bootstrap_servers": bootstrap_servers,
            "group_id": group_id,
            "client_id": client_id,
            # Static membership: a restarted worker with the same id gets its partitions back
            # without waiting out the session of the one that died (KIP-345).
            "group_instance_id": group_instance_id,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": max(1_000, session_timeout_ms // 4),
        }
        self._consumer: AIOKafkaConsumer | None = None
        self.commits = Dependency("kafka.commit")

    async def start(self) -> None:
        """Join the group and start fetching and committing in the background."""
        # aiokafka binds to the running loop at construction, so build it here.
        self._consumer = AIOKafkaConsumer(
            **self._options,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
        )
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        throttle_metadata_retries(self._consumer._client)
        try:
            await self._consumer.start()
        except BaseException:
            # Kafka is unreachable: leave nothing half-open, the caller tries again later.
            consumer, self._consumer = self._consumer, None
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._tasks = [
            asyncio.create_task(self._fetch_loop(), name="brain-fetch"),
            asyncio.create_task(self._commit_loop(), name="brain-commit"),
        ]

    @property
    def started(self) -> bool:
        """Joined (or joining) the group and fetching."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    @property
    def healthy(self) -> bool:
        """Started, and its commits are not refused for longer than a rebalance takes.

        Commits refused for that long while Kafka answers mean this worker is not really a
        member: most often two live workers share one `KAFKA_GROUP_INSTANCE_ID` and keep
        replacing each other (docs/operations.md)."""
        return self.started and self.commits.failing_for < COMMIT_FAILING_UNHEALTHY_S

    async def stop(self) -> None:
        """Finish or abandon running turns, commit what finished, leave the group."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._release(list(self._schedulers))
        if self._consumer is not None:
            await self._consumer.stop()

    # -- loops -----------------------------------------------------------------------------

    @property
    def _kafka(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "start() first"
        return self._consumer

    async def _fetch_loop(self) -> None:
        while True:
            try:
                fetched = await self._kafka.getmany(timeout_ms=200, max_records=500)
            except KafkaError as exc:
                log.warning("brain.fetch.failed", error=type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            for tp, records in fetched.items():
                scheduler = self._schedulers.get(tp)
                if scheduler is None:  # revoked between fetch and here: the new owner has it
                    continue
                for record in records:
                    scheduler.add(self._parse(record))
            self._apply_backpressure()

    def _apply_backpressure(self) -> None:
        buffered = sum(s.in_flight for s in self._schedulers.values())
        IN_FLIGHT.set(buffered)
        assigned = list(self._schedulers)
        if not self._paused and buffered >= self._max_buffered:
            self._kafka.pause(*assigned)
            self._paused = True
        elif self._paused and buffered < self._max_buffered // 2:
            self._kafka.resume(*assigned)
            self._paused = False

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._commit_interval_s)
            await self._commit(list(self._schedulers))
            self._apply_backpressure()

    async def _commit(self, partitions: list[TopicPartition]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for tp in partitions:
            scheduler = self._schedulers.get(tp)
            offset = scheduler.offsets.to_commit() if scheduler else None
            if offset is not None:
                offsets[tp] = offset
        if not offsets:
            return
        async with self._commit_lock:
            try:
                await self._kafka.commit(offsets)
            except (CommitFailedError, KafkaError) as exc:
                # Lost the partition (rebalance) or the broker hiccuped: the records are
                # redone by whoever owns them, idempotently. Next round retries ours.
                # Logged once per outage (this loop runs five times a second).
                self.commits.failed(exc)
                return
        self.commits.succeeded()
        for tp, offset in offsets.items():
            scheduler = self._schedulers.get(tp)
            if scheduler is not None:
                scheduler.offsets.committed(offset)

    # -- rebalancing -----------------------------------------------------------------------

    def _assign(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            if tp not in self._schedulers:
                self._schedulers[tp] = PartitionScheduler(
                    tp.partition, self._handle, self._policy, self._slots
                )
        if self._paused:  # new partitions start fetching; the loop re-pauses if needed
            self._kafka.resume(*self._schedulers)
            self._paused = False
        log.info("brain.partitions.assigned", partitions=sorted(tp.partition for tp in partitions))

    async def _release(self, partitions: list[TopicPartition]) -> None:
        schedulers = [self._schedulers[tp] for tp in partitions if tp in self._schedulers]
        await asyncio.gather(*(s.drain(self._drain_timeout_s) for s in schedulers))
        with contextlib.suppress(Exception):
            await self._commit(partitions)
        for tp in partitions:
            self._schedulers.pop(tp, None)
        if partitions:
            log.info(
                "brain.partitions.released", partitions=sorted(tp.partition for tp in partitions)
            )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Drains and commits revoked partitions before the group hands them on."""

    def __init__(self, consumer: KeyOrderedConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._consumer._release(list(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._consumer._assign(set(assigned))
