"""What happens when a customer sends again before the last message was answered.

Each channel has the policy its customers expect:
- chat: **queue**. Every message gets its own answer, in order.
- SMS: **collect**. Texts sent within a short window of each other ("hi" / "one more thing"
  / "my order is late") are answered as one turn, with one SMS back.
- voice: **interrupt**. A newer final utterance cancels the answer being generated; the
  caller has moved on, and what they heard is recorded as interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shared.contracts import Channel, InboundMessage, MessageKind


@dataclass(frozen=True)
class DoubleTextingPolicy:
    """The per-channel rules, with the SMS collect window."""

    sms_collect_window_s: float
    max_collected: int = 10

    def collects(self, message: InboundMessage) -> bool:
        """Does a turn starting with `message` wait for more texts?"""
        return (
            message.channel is Channel.SMS
            and message.kind is MessageKind.TEXT
            and self.sms_collect_window_s > 0
        )

    def joins(self, previous: InboundMessage, message: InboundMessage) -> bool:
        """Is `message` part of the same SMS burst as `previous` (sent within the window)?"""
        if not (self.collects(previous) and self.collects(message)):
            return False
        gap = (message.occurred_at - previous.occurred_at).total_seconds()
        return gap <= self.sms_collect_window_s

    def wait_s(self, last: InboundMessage, now: datetime | None = None) -> float:
        """How much longer a burst ending with `last` stays open for more texts."""
        now = now or datetime.now(UTC)
        remaining = self.sms_collect_window_s - (now - last.occurred_at).total_seconds()
        # Never longer than one window, even if the sender's clock runs ahead of ours.
        return min(remaining, self.sms_collect_window_s)

    @staticmethod
    def interrupts(running: InboundMessage, newer: InboundMessage) -> bool:
        """Does `newer` barge in on the voice answer being generated for `running`?"""
        return (
            running.channel is Channel.VOICE
            and running.kind is MessageKind.TEXT
            and newer.channel is Channel.VOICE
            and newer.kind is MessageKind.TEXT
            and bool(newer.text.strip())
        )
