"""PartitionOffsets: only the contiguous finished prefix of a partition is ever committed."""

from __future__ import annotations

import pytest

from services.brain.offsets import PartitionOffsets

pytestmark = pytest.mark.unit


def received(*offsets: int) -> PartitionOffsets:
    tracker = PartitionOffsets()
    for offset in offsets:
        tracker.received(offset)
    return tracker


def test_nothing_received_nothing_to_commit() -> None:
    tracker = PartitionOffsets()
    assert tracker.to_commit() is None
    assert tracker.in_flight == 0


def test_out_of_order_finishes_commit_only_the_contiguous_prefix() -> None:
    tracker = received(10, 11, 12)
    assert tracker.to_commit() is None

    tracker.finished(12)
    assert tracker.to_commit() is None  # 10 and 11 still open
    assert tracker.in_flight == 3

    tracker.finished(10)
    assert tracker.to_commit() == 11  # next to read after 10; 11 is unfinished
    assert tracker.in_flight == 2

    tracker.finished(11)
    assert tracker.to_commit() == 13  # 11 and the already finished 12 join the prefix
    assert tracker.in_flight == 0


def test_to_commit_is_none_until_something_new_finishes() -> None:
    tracker = received(5, 6)
    tracker.finished(6)
    assert tracker.to_commit() is None
    tracker.finished(5)
    assert tracker.to_commit() == 7
    tracker.committed(7)
    assert tracker.to_commit() is None
    assert tracker.to_commit() is None


def test_committed_suppresses_repeats_until_the_prefix_advances() -> None:
    tracker = received(0, 1, 2)
    tracker.finished(0)
    assert tracker.to_commit() == 1
    tracker.committed(1)
    assert tracker.to_commit() is None

    tracker.finished(2)  # 1 still open: the prefix does not move
    assert tracker.to_commit() is None

    tracker.finished(1)
    assert tracker.to_commit() == 3
    tracker.committed(3)
    assert tracker.to_commit() is None


def test_to_commit_repeats_until_acknowledged() -> None:
    tracker = received(0)
    tracker.finished(0)
    assert tracker.to_commit() == 1
    assert tracker.to_commit() == 1  # not committed yet: still offered


def test_finishing_an_unknown_offset_is_ignored() -> None:
    tracker = received(10, 11)
    tracker.finished(3)
    tracker.finished(99)
    assert tracker.to_commit() is None
    assert tracker.in_flight == 2

    tracker.finished(10)
    tracker.finished(10)  # again: already part of the prefix, now unknown
    assert tracker.to_commit() == 11
    assert tracker.in_flight == 1


def test_finishing_twice_before_the_prefix_reaches_it_is_harmless() -> None:
    tracker = received(1, 2)
    tracker.finished(2)
    tracker.finished(2)
    assert tracker.to_commit() is None
    assert tracker.in_flight == 2
    tracker.finished(1)
    assert tracker.to_commit() == 3


def test_in_flight_counts_received_and_not_yet_in_the_prefix() -> None:
    tracker = PartitionOffsets()
    for offset in range(100, 105):
        tracker.received(offset)
        assert tracker.in_flight == offset - 99
    tracker.finished(104)
    tracker.finished(102)
    assert tracker.in_flight == 5
    tracker.finished(100)
    assert tracker.in_flight == 4
    tracker.finished(101)
    assert tracker.in_flight == 2  # 103 open, and 104 finished behind it
    assert tracker.to_commit() == 103


def test_gaps_in_received_offsets_are_fine() -> None:
    """Compacted topics and transaction markers leave holes; the next received one counts."""
    tracker = received(10, 15, 20)
    tracker.finished(10)
    assert tracker.to_commit() == 11
    tracker.finished(15)
    assert tracker.to_commit() == 16
    tracker.received(21)
    tracker.finished(21)
    assert tracker.to_commit() == 16  # 20 still open
    tracker.finished(20)
    assert tracker.to_commit() == 22
