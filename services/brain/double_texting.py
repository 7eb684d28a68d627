"""What happens when a customer sends again before the last message was answered.

Each channel gets the policy its customers expect, chosen by its profile:
- **queue** (the default: web chat). Every message gets its own answer, in order.
- **collect** (`collect_window_ms` > 0: SMS). Texts sent within the window of each other
  ("hi" / "one more thing" / "my order is late") are answered as one turn, with one reply.
- **interrupt** (`interruptible`, speech: phone calls). The caller speaking again cancels
  the answer being spoken; they have moved on, and what they heard is recorded as
  interrupted.

Interruption in detail (`interrupts`, `supersedes`):
- A *streamed* voice answer (to a final transcript, keys pressed, or an unheld greeting) is
  interrupted by a newer final transcript, a partial transcript (the caller started
  speaking: barge-in), keys pressed, or the call ending (nobody is listening any more).
- A whole answer for a held request (reply mode SYNC: the greeting on a call's first
  `fetch`, keys sent with a `fetch`) is never interrupted: it is one short reply the holder
  is waiting for, and there is no half of it to keep.
- A voice answer still *queued* is moot (it starts interrupted, says nothing) only when a
  newer final input is queued behind it: a final transcript, keys, or the call's end. A
  partial transcript behind it is not enough: it is the start of the caller's *next*
  utterance, and the final one before it still deserves its answer. (The scheduler also
  drops such a partial's STOP, which would cut the very answer it predates.)

Provider retries (Twilio resends a webhook with the same MessageSid; each copy is its own
Kafka record) are not new texts: a `Turn` keeps one message per provider message id, and a
copy of a text already in a burst is absorbed into it without counting toward the cap
or holding the window open. Copies of a message answered by an *earlier* turn cannot be
recognised here; memory's processed record filters them under the conversation lock
(`TurnProcessor.run`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.brain.calls import answered_whole, is_spoken_answer
from shared.contracts import InboundMessage, MessageKind


def distinct(
    messages: Iterable[InboundMessage],
) -> tuple[list[InboundMessage], list[InboundMessage]]:
    """Split `messages` into the first occurrence of each provider message (in order) and
    the later copies of one of them (provider retries, redeliveries)."""
    firsts: dict[str, InboundMessage] = {}
    copies: list[InboundMessage] = []
    for message in messages:
        if message.dedupe_key in firsts:
            copies.append(message)
        else:
            firsts[message.dedupe_key] = message
    return list(firsts.values()), copies


@dataclass
class Turn:
    """The unit of work: messages of one conversation answered together, in offset order.

    Built from a scheduled batch, it keeps each provider message once (`messages`) and sets
    the copies aside (`copies`): they are reported as deduplicated, never answered, joined
    into the user text nor remembered.
    """

    messages: list[InboundMessage]
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)
    copies: list[InboundMessage] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.messages, self.copies = distinct(self.messages)

    @property
    def conversation_id(self) -> str:
        return self.messages[0].conversation_id

    @property
    def first(self) -> InboundMessage:
        return self.messages[0]

    def interrupt(self) -> None:
        """The caller spoke again or hung up (voice barge-in): stop answering this turn."""
        self.interrupted.set()


def _window_s(message: InboundMessage) -> float:
    return message.profile.collect_window_ms / 1000


@dataclass(frozen=True)
class DoubleTextingPolicy:
    """The rules, as each message's channel profile sets them (collect window,
    interruptible)."""

    max_collected: int = 10

    def collects(self, message: InboundMessage) -> bool:
        """Does a turn starting with `message` wait for more texts?"""
        return (
            message.profile.collect_window_ms > 0
            and not message.profile.spoken
            and message.kind is MessageKind.TEXT
        )

    def joins(self, previous: InboundMessage, message: InboundMessage) -> bool:
        """Is `message` part of the same burst as `previous` (same channel, in the window)?"""
        if not (self.collects(previous) and self.collects(message)):
            return False
        if message.channel != previous.channel:
            return False
        gap = (message.occurred_at - previous.occurred_at).total_seconds()
        return gap <= _window_s(message)

    def absorbs(self, burst: Sequence[InboundMessage], message: InboundMessage) -> bool:
        """Is `message` a copy of a text already in `burst` (a provider retry)?

        It belongs to the burst wherever and whenever it arrives, and is no new text: it
        neither counts toward `max_collected` nor keeps the window open.
        """
        return self.collects(message) and any(m.dedupe_key == message.dedupe_key for m in burst)

    def wait_s(self, last: InboundMessage, now: datetime | None = None) -> float:
        """How much longer a burst ending with `last` stays open for more texts."""
        now = now or datetime.now(UTC)
        window_s = _window_s(last)
        remaining = window_s - (now - last.occurred_at).total_seconds()
        # Never longer than one window, even if the sender's clock runs ahead of ours.
        return min(remaining, window_s)

    @staticmethod
    def interrupts(running: InboundMessage, newer: InboundMessage) -> bool:
        """Does `newer` barge in on the spoken answer being generated for `running`?

        Only on an interruptible channel, by a newer event of the same call's channel."""
        if not (running.profile.interruptible and is_spoken_answer(running)):
            return False
        if answered_whole(running) or newer.channel != running.channel:
            return False
        if newer.dedupe_key == running.dedupe_key:
            # A provider retry or a race of the same utterance, not a newer one: treating it
            # as a barge-in would record the turn as interrupted and its copies as processed,
            # and the caller would never hear an answer.
            return False
        if newer.kind in (MessageKind.PARTIAL_TRANSCRIPT, MessageKind.CALL_ENDED):
            return True
        return newer.kind in (MessageKind.TEXT, MessageKind.DTMF) and is_spoken_answer(newer)

    @staticmethod
    def supersedes(queued: InboundMessage, newer: InboundMessage) -> bool:
        """Is the voice turn for `queued` moot, with `newer` already queued behind it?"""
        return (
            DoubleTextingPolicy.interrupts(queued, newer)
            and newer.kind is not MessageKind.PARTIAL_TRANSCRIPT
        )

    @staticmethod
    def predates_answer(queued: InboundMessage, answering: InboundMessage) -> bool:
        """Is `queued` a partial transcript whose STOP would only cut the answer to
        `answering`, a voice turn that starts while the partial waits behind it?"""
        return (
            queued.profile.interruptible
            and queued.kind is MessageKind.PARTIAL_TRANSCRIPT
            and is_spoken_answer(answering)
        )
