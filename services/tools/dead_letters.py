"""Dead letters: list what is parked on a dead-letter topic (DLQ), and replay it.

A dead letter is a record a consumer could not process: an invalid event, a turn that kept
failing, a reply that could not be delivered. Rather than drop it or block its partition, the
consumer parks it on its stage's DLQ as a `DeadLetter` event (`services/common/deadletter.py`):
the original value (as UTF-8 text), key and headers, where it came from (`source_topic`,
`partition`, `offset`) and why (`reason`, `error`, `attempts`). The `inbound` DLQ holds
inbound events the brain could not process; the `replies` DLQ holds replies egress could not
deliver.

Replay puts the original record back on its source topic, once the cause is fixed: same key
(so the same partition as the rest of its conversation), same headers (so the same trace),
plus `sb-replayed-from: <dlq topic>:<partition>:<offset>`. It is safe because every consumer
is idempotent: the brain dedupes inbound messages on the provider's message id
(`InboundMessage.dedupe_key`), and egress keeps a delivery ledger per `reply_id`, so a message
that did get through after all is neither answered nor delivered twice. A record is only
ever sent to a topic of this deployment's namespace, never to another deployment's.

Replay marker: once Kafka has acknowledged a replayed record, the tool sets
`{redis_prefix}:dlq:replayed:{dlq topic}:{partition}:{offset}` (SET NX; value: ISO time of
the first replay) and later runs skip that letter unless forced. The marker lives 30 days
(`MARKER_TTL_S`): longer than a DLQ keeps its letters (Kafka's default retention is 7 days),
yet bounded, so a DLQ that is recreated (offsets restarting at 0) is not shadowed for ever by
stale markers. A crash between the acknowledgement and the marker only means a later run
replays the letter again, which the consumers' idempotency absorbs.

Output shows positions, ids and reasons only, never payloads: they may hold customer text.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError
from redis.asyncio import Redis

from services.common.redis import make_redis
from shared.contracts import DeadLetter, utcnow
from shared.logs import configure_logging
from shared.settings import BaseServiceSettings

Queue = Literal["replies", "inbound"]
"""Which DLQ: replies egress could not deliver, or inbound events the brain could not process."""

Position = tuple[int, int]
"""A record's place on the DLQ: (partition, offset)."""

REPLAYED_FROM_HEADER = "sb-replayed-from"
DLQ_HEADER_PREFIX = "sb-dlq-"
MARKER_TTL_S = 30 * 24 * 3600
READ_TIMEOUT_S = 60.0
UNREADABLE_REASON = "(unreadable)"
"""Reason shown for a DLQ record that is not a `DeadLetter`; no real reason has parentheses."""
ERROR_WIDTH = 60


@dataclass(frozen=True)
class StoredLetter:
    """One record of a DLQ: its position there and the letter it holds (None if unreadable)."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    letter: DeadLetter | None
    parse_error: str | None = None

    @property
    def position(self) -> Position:
        """(partition, offset) on the DLQ."""
        return (self.dlq_partition, self.dlq_offset)

    @property
    def reason(self) -> str:
        """The letter's reason, or `UNREADABLE_REASON`."""
        return self.letter.reason if self.letter else UNREADABLE_REASON


class Action(StrEnum):
    """What replay did (or, in a dry run, would do) with one letter."""

    REPLAYED = "replayed"
    REPLAYED_AGAIN = "replayed again (forced)"
    WOULD_REPLAY = "would replay"
    WOULD_REPLAY_AGAIN = "would replay again (forced)"
    ALREADY_REPLAYED = "skipped: already replayed"
    FILTERED = "skipped: filtered out"
    UNREADABLE = "skipped: unreadable"


_REPLAYING = {
    Action.REPLAYED,
    Action.REPLAYED_AGAIN,
    Action.WOULD_REPLAY,
    Action.WOULD_REPLAY_AGAIN,
}


class ReplayRow(NamedTuple):
    """One letter's line in a replay report."""

    position: Position
    reason: str
    source_topic: str
    action: Action


@dataclass
class ReplayReport:
    """Outcome of one replay run. In a dry run, `replayed` counts what would be replayed."""

    dlq_topic: str
    dry_run: bool
    replayed: int = 0
    skipped_already_replayed: int = 0
    skipped_filtered: int = 0
    unreadable: int = 0
    rows: list[ReplayRow] = field(default_factory=list)

    @property
    def matched(self) -> int:
        """Readable letters that matched the selection, replayed or not."""
        return self.replayed + self.skipped_already_replayed

    def add(self, item: StoredLetter, action: Action) -> None:
        """Record what happened to one letter."""
        if action in _REPLAYING:
            self.replayed += 1
        elif action is Action.ALREADY_REPLAYED:
            self.skipped_already_replayed += 1
        elif action is Action.FILTERED:
            self.skipped_filtered += 1
        else:
            self.unreadable += 1
        source = item.letter.source_topic if item.letter else "-"
        self.rows.append(ReplayRow(item.position, item.reason, source, action))


class ForeignTopicError(ValueError):
    """A selected letter names a source topic outside this deployment's namespace."""


def dlq_topic(settings: BaseServiceSettings, queue: Queue) -> str:
    """The DLQ topic of `queue` in this deployment."""
    topics = settings.topics
    return topics.dlq_replies if queue == "replies" else topics.dlq_inbound


def marker_key(redis_prefix: str, item: StoredLetter) -> str:
    """Redis key remembering that the letter at this DLQ position was replayed."""
    return f"{redis_prefix}:dlq:replayed:{item.dlq_topic}:{item.dlq_partition}:{item.dlq_offset}"


# --- reading -------------------------------------------------------------------------------


async def read_dead_letters(
    bootstrap: str, topic: str, timeout_s: float = READ_TIMEOUT_S
) -> list[StoredLetter]:
    """Every record on the DLQ `topic` now, by partition then offset; [] if no such topic.

    Reads without a consumer group (nothing is committed) up to the end offsets taken at the
    start, so letters parked meanwhile wait for the next run. A record that is not a
    `DeadLetter` comes back with `letter=None` and a `parse_error`.
    """
    partitions = [TopicPartition(topic, number) for number in await _partitions(bootstrap, topic)]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        # A group-less consumer resets a new assignment to this, racing the seek below.
        auto_offset_reset="earliest",
        client_id="switchboard-dlq-reader",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        end: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(timeout_s):
            records = await _fetch_until(consumer, end)
    except TimeoutError as exc:
        raise TimeoutError(f"could not read {topic} to its end in {timeout_s:.0f} s") from exc
    finally:
        await consumer.stop()
    by_position = {(record.partition, record.offset): record for record in records}
    return [_parse(topic, by_position[position]) for position in sorted(by_position)]


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    """Partition ids of `topic`, [] if it does not exist.

    Asks for every topic's metadata: naming the topic would let a broker that auto-creates
    topics create it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        described: list[dict[str, Any]] = await admin.describe_topics()
    finally:
        await admin.close()
    return sorted(
        partition["partition"]
        for entry in described
        if entry["topic"] == topic
        for partition in entry["partitions"]
    )


async def _fetch_until(
    consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]
) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    pending = {tp for tp, stop in end.items() if await consumer.position(tp) < stop}
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=500)
        for tp, batch in batches.items():
            records.extend(record for record in batch if record.offset < end[tp])
        pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
    return records


def _parse(topic: str, record: ConsumerRecord) -> StoredLetter:
    try:
        letter = DeadLetter.model_validate_json(record.value or b"")
    except ValidationError as exc:
        return StoredLetter(topic, record.partition, record.offset, None, _describe(exc))
    return StoredLetter(topic, record.partition, record.offset, letter)


def _describe(exc: ValidationError) -> str:
    """The first validation error, without the input (it may be customer text)."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    return f"not a DeadLetter ({exc.error_count()} error(s); {where}: {first['msg']})"


def select(
    letters: Iterable[StoredLetter],
    reason: str | None = None,
    positions: set[Position] | None = None,
) -> list[StoredLetter]:
    """The letters at one of `positions` (if given) with reason `reason` (if given)."""
    return [item for item in letters if _matches(item, reason, positions)]


def _matches(item: StoredLetter, reason: str | None, positions: set[Position] | None) -> bool:
    if positions is not None and item.position not in positions:
        return False
    return reason is None or item.reason == reason


# --- replaying -----------------------------------------------------------------------------


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


# --- command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `switchboard dead-letters` (or whatever name the CLI mounts this under)."""
    parser.add_argument("action", choices=["list", "replay"], help="list or replay dead letters")
    parser.add_argument(
        "--queue",
        choices=["replies", "inbound"],
        default="replies",
        help="replies egress could not deliver, or inbound events the brain could not process",
    )
    parser.add_argument("--reason", default=None, help="only letters with this reason")
    parser.add_argument(
        "--at",
        action="append",
        default=None,
        metavar="PARTITION:OFFSET",
        help="only the letter at this DLQ position (repeatable)",
    )
    parser.add_argument("--force", action="store_true", help="replay letters replayed before")
    parser.add_argument("--dry-run", action="store_true", help="show what replay would do")


def parse_positions(values: Sequence[str] | None) -> set[Position] | None:
    """`PARTITION:OFFSET` strings as positions; None when none given. Raises ValueError."""
    if not values:
        return None
    positions: set[Position] = set()
    for value in values:
        partition, sep, offset = value.partition(":")
        if not (sep and partition.isdigit() and offset.isdigit()):
            raise ValueError(f"--at {value!r}: expected PARTITION:OFFSET, e.g. 0:42")
        positions.add((int(partition), int(offset)))
    return positions


def run(args: argparse.Namespace) -> int:
    """Run `list` or `replay`: 0 on success, 1 when replay matched nothing, 2 on bad input."""
    try:
        positions = parse_positions(args.at)
    except ValueError as exc:
        return _fail(str(exc))
    if args.action == "list" and (args.force or args.dry_run):
        return _fail("--force and --dry-run apply to replay only")
    settings = BaseServiceSettings()
    configure_logging(settings.log_level, settings.log_format)
    if args.action == "list":
        topic = dlq_topic(settings, args.queue)
        letters = asyncio.run(read_dead_letters(settings.kafka_bootstrap_servers, topic))
        print(format_letters(topic, select(letters, args.reason, positions)))
        return 0
    return _run_replay(settings, args, positions)


def _run_replay(
    settings: BaseServiceSettings, args: argparse.Namespace, positions: set[Position] | None
) -> int:
    try:
        report = asyncio.run(
            replay_dead_letters(
                settings,
                args.queue,
                reason=args.reason,
                positions=positions,
                force=args.force,
                dry_run=args.dry_run,
            )
        )
    except ForeignTopicError as exc:
        return _fail(str(exc))
    print(format_report(report))
    return 0 if report.matched else 1


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def format_letters(topic: str, letters: Sequence[StoredLetter]) -> str:
    """A table of letters (no payloads) and a count per reason."""
    if not letters:
        return f"no dead letters on {topic}"
    table = _table(
        ("POSITION", "REASON", "ATTEMPTS", "SOURCE TOPIC", "KEY", "TIME", "ERROR"),
        [_letter_cells(item) for item in letters],
    )
    counts = Counter(item.reason for item in letters)
    per_reason = ", ".join(f"{reason} {count}" for reason, count in counts.most_common())
    return f"{table}\n\n{len(letters)} dead letter(s) on {topic}: {per_reason}"


def _letter_cells(item: StoredLetter) -> list[str]:
    position = f"{item.dlq_partition}:{item.dlq_offset}"
    letter = item.letter
    if letter is None:
        return [position, item.reason, "-", "-", "-", "-", _clip(item.parse_error or "")]
    return [
        position,
        letter.reason,
        str(letter.attempts),
        letter.source_topic,
        letter.key or "-",
        letter.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        _clip(letter.error),
    ]


def format_report(report: ReplayReport) -> str:
    """The selected letters with the action taken, and a summary line."""
    rows = [row for row in report.rows if row.action is not Action.FILTERED]
    verb = "would replay" if report.dry_run else "replayed"
    summary = (
        f"{report.dlq_topic}: {verb} {report.replayed}, "
        f"already replayed {report.skipped_already_replayed}, "
        f"unreadable {report.unreadable}, filtered out {report.skipped_filtered}"
        + (" (dry run: nothing published)" if report.dry_run else "")
    )
    if not report.matched:
        summary += "\nnothing matched the selection"
    if not rows:
        return summary
    table = _table(
        ("POSITION", "REASON", "SOURCE TOPIC", "ACTION"),
        [_report_cells(row) for row in rows],
    )
    return f"{table}\n\n{summary}"


def _report_cells(row: ReplayRow) -> list[str]:
    partition, offset = row.position
    return [f"{partition}:{offset}", row.reason, row.source_topic, row.action.value]


def _clip(text: str, width: int = ERROR_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cells[i]) for cells in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
        for cells in [headers, *rows]
    ]
    return "\n".join(lines)
