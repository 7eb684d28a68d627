"""Replaying letters to their source topics, marked in Redis so a later run skips them."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from services.common.redis import make_redis
from services.tools.dead_letters.letters import (
    Action,
    ForeignTopicError,
    Position,
    Queue,
    ReplayReport,
    StoredLetter,
    dlq_topic,
    marker_key,
)
from services.tools.dead_letters.reading import read_dead_letters, select
from shared.contracts import DeadLetter, utcnow
from shared.settings import BaseServiceSettings

REPLAYED_FROM_HEADER = "sb-replayed-from"
DLQ_HEADER_PREFIX = "sb-dlq-"
MARKER_TTL_S = 30 * 24 * 3600


async def replay_dead_letters(
    settings: BaseServiceSettings,
    which: Queue,
    *,
    reason: str | None = None,
    positions: set[Position] | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> ReplayReport:
    """Re-publish the selected letters of one DLQ to their source topics.

    Selected: at one of `positions` and with `reason`, when given. Each is published with its
    original value, key and headers (minus `sb-dlq-*`, plus `sb-replayed-from`) and marked in
    Redis once Kafka acknowledged it. Letters already marked are skipped unless `force`.
    `dry_run` publishes and marks nothing but reports what would happen.

    Raises `ForeignTopicError` (a `ValueError`), before publishing anything, when a selected
    letter's source topic is outside `settings.topic_namespace`.
    """
    topic = dlq_topic(settings, which)
    letters = await read_dead_letters(settings.kafka_bootstrap_servers, topic)
    chosen = select(letters, reason, positions)
    _refuse_foreign(settings.topic_namespace, chosen)
    chosen_at = {item.position for item in chosen}
    report = ReplayReport(topic, dry_run)
    redis = make_redis(settings.redis_url)
    producer = None if dry_run else await _start_producer(settings.kafka_bootstrap_servers)
    try:
        replayer = _Replayer(redis, producer, settings.redis_prefix, force)
        for item in letters:
            action = await replayer.replay(item) if item.position in chosen_at else Action.FILTERED
            report.add(item, action)
    finally:
        if producer is not None:
            await producer.stop()
        await redis.aclose()
    return report


def _refuse_foreign(namespace: str, chosen: Sequence[StoredLetter]) -> None:
    prefix = f"{namespace}."
    foreign = [
        f"{item.dlq_partition}:{item.dlq_offset} -> {item.letter.source_topic}"
        for item in chosen
        if item.letter and not item.letter.source_topic.startswith(prefix)
    ]
    if foreign:
        raise ForeignTopicError(
            f"refusing to replay: {len(foreign)} selected letter(s) name a source topic outside "
            f"namespace {namespace!r} ({', '.join(foreign)}); nothing was replayed. "
            "Narrow the selection by reason or position to leave them out."
        )


async def _start_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="switchboard-dlq-replay",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=15_000,
    )
    await producer.start()
    return producer


def replay_headers(item: StoredLetter, letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers without `sb-dlq-*`, plus `sb-replayed-from` naming `item`."""
    kept = {
        name: value
        for name, value in letter.headers.items()
        if not name.startswith(DLQ_HEADER_PREFIX) and name != REPLAYED_FROM_HEADER
    }
    kept[REPLAYED_FROM_HEADER] = f"{item.dlq_topic}:{item.dlq_partition}:{item.dlq_offset}"
    return [(name, value.encode("utf-8")) for name, value in kept.items()]


class _Replayer:
    """Replays one selected letter at a time; `producer=None` is a dry run."""

    def __init__(
        self, redis: Redis, producer: AIOKafkaProducer | None, redis_prefix: str, force: bool
    ) -> None:
        self._redis = redis
        self._producer = producer
        self._prefix = redis_prefix
        self._force = force

    async def replay(self, item: StoredLetter) -> Action:
        """Publish the letter (unless skipped or a dry run), then mark it."""
        if item.letter is None:
            return Action.UNREADABLE
        marker = marker_key(self._prefix, item)
        again = bool(await self._redis.exists(marker))
        if again and not self._force:
            return Action.ALREADY_REPLAYED
        if self._producer is None:
            return Action.WOULD_REPLAY_AGAIN if again else Action.WOULD_REPLAY
        await self._producer.send_and_wait(
            item.letter.source_topic,
            value=item.letter.payload.encode("utf-8"),
            key=item.letter.key.encode("utf-8") if item.letter.key is not None else None,
            headers=replay_headers(item, item.letter),
        )
        await self._redis.set(marker, utcnow().isoformat(), nx=True, ex=MARKER_TTL_S)
        return Action.REPLAYED_AGAIN if again else Action.REPLAYED
