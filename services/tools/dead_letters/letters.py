"""What a DLQ record is, where it sits, and what replay did (or would do) with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, NamedTuple

from shared.contracts import DeadLetter
from shared.settings import BaseServiceSettings

Queue = Literal["replies", "inbound"]
"""Which DLQ: replies egress could not deliver, or inbound events the brain could not process."""

Position = tuple[int, int]
"""A record's place on the DLQ: (partition, offset)."""

UNREADABLE_REASON = "(unreadable)"
"""Reason shown for a DLQ record that is not a `DeadLetter`; no real reason has parentheses."""


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
