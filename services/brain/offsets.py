"""Which offset of a partition is safe to commit when records finish out of order.

Records of different conversations finish in any order; the committed offset must never pass
a record that is not finished, or a crash would lose it. So the safe commit is the end of the
contiguous finished prefix: with 10, 11, 12 received and 10 and 12 finished, it is 11.
"""

from __future__ import annotations


class PartitionOffsets:
    """Tracks received and finished offsets of one partition."""

    def __init__(self) -> None:
        self._pending: dict[int, bool] = {}  # offset -> finished; insertion = offset order
        self._committable: int | None = None
        self._committed: int | None = None

    def received(self, offset: int) -> None:
        """A record was fetched and handed to processing (call in offset order)."""
        self._pending[offset] = False

    def finished(self, offset: int) -> None:
        """A record's effects are durable (or it is dead-lettered)."""
        if offset not in self._pending:
            return
        self._pending[offset] = True
        while self._pending:
            oldest = next(iter(self._pending))
            if not self._pending[oldest]:
                break
            del self._pending[oldest]
            self._committable = oldest + 1

    @property
    def in_flight(self) -> int:
        """Records received and not yet part of the finished prefix."""
        return len(self._pending)

    def to_commit(self) -> int | None:
        """The offset to commit now (next to read), or None if nothing new finished."""
        if self._committable is None or self._committable == self._committed:
            return None
        return self._committable

    def committed(self, offset: int) -> None:
        """Record that `offset` was committed."""
        self._committed = offset
