"""What a held custom-LLM request knows of its answer while it streams it.

Egress hands the holder each sentence as a `StreamPart` through the inbox. Parts may come
twice (a redelivery, a retried turn republished by the brain) or out of order: the holder
takes them in part order, the first copy of each, up to the final one. Other reasons for the
stream to end (the brain stopped the answer, VAPI hung up, ingress shuts down) are flags set
here; whoever waits is woken by any change.
"""

from __future__ import annotations

import asyncio
import contextlib

from shared.contracts.inbox import StreamPart


class HeldStream:
    """One held request's view of its answer: parts in order, and why it may end early."""

    def __init__(self, correlation_id: str) -> None:
        self.correlation_id = correlation_id
        self.finished = False
        """The final part was taken: the answer is complete."""
        self.stopped = False
        """The brain stopped the answer (barge-in): finish without an apology."""
        self.disconnected = False
        """VAPI hung up on the request."""
        self.closing = False
        """Ingress shuts down."""
        self._parts: dict[int, StreamPart] = {}
        self._next = 0
        self._changed = asyncio.Event()

    def add(self, part: StreamPart) -> None:
        """Keep the first copy of each part not taken yet."""
        if not self.finished and part.part >= self._next:
            self._parts.setdefault(part.part, part)
            self._changed.set()

    def ready(self) -> list[StreamPart]:
        """The parts that continue the answer without a gap, up to the final one."""
        taken: list[StreamPart] = []
        while not self.finished and self._next in self._parts:
            part = self._parts.pop(self._next)
            self._next += 1
            taken.append(part)
            self.finished = part.final
        return taken

    def stop(self) -> None:
        self.stopped = True
        self._changed.set()

    def disconnect(self) -> None:
        self.disconnected = True
        self._changed.set()

    def close(self) -> None:
        self.closing = True
        self._changed.set()

    def poke(self) -> None:
        self._changed.set()

    def settle(self) -> None:
        """Called before looking at the state: a change after this wakes `wait` at once."""
        self._changed.clear()

    async def wait(self, timeout_s: float) -> None:
        """Until something changes, or `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout_s)):
                await self._changed.wait()
