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

Modules: `letters` (what a DLQ record is, what replay did with it), `reading` (list a DLQ),
`replaying` (publish letters back, the Redis marker), `formatting` (the tables printed); this
one is the command line (`switchboard dlq`) and the package's public names.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from services.tools.dead_letters.formatting import ERROR_WIDTH, format_letters, format_report
from services.tools.dead_letters.letters import (
    UNREADABLE_REASON,
    Action,
    ForeignTopicError,
    Position,
    Queue,
    ReplayReport,
    ReplayRow,
    StoredLetter,
    dlq_topic,
    marker_key,
)
from services.tools.dead_letters.reading import READ_TIMEOUT_S, read_dead_letters, select
from services.tools.dead_letters.replaying import (
    DLQ_HEADER_PREFIX,
    MARKER_TTL_S,
    REPLAYED_FROM_HEADER,
    replay_dead_letters,
    replay_headers,
)
from shared.logs import configure_logging
from shared.settings import BaseServiceSettings

__all__ = [
    "DLQ_HEADER_PREFIX",
    "ERROR_WIDTH",
    "MARKER_TTL_S",
    "READ_TIMEOUT_S",
    "REPLAYED_FROM_HEADER",
    "UNREADABLE_REASON",
    "Action",
    "ForeignTopicError",
    "Position",
    "Queue",
    "ReplayReport",
    "ReplayRow",
    "StoredLetter",
    "add_arguments",
    "dlq_topic",
    "format_letters",
    "format_report",
    "marker_key",
    "parse_positions",
    "read_dead_letters",
    "replay_dead_letters",
    "replay_headers",
    "run",
    "select",
]


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
    # Imported into this module, not called through `shared.logs`: tests replace it here.
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
