"""PartitionScheduler: key-ordered turns, concurrency across keys, double texting, drain.

The turn handler is a fake that records each call and blocks on a per-call gate (keyed by the
batch's first offset) until the test releases it, so every interleaving here is forced by
`asyncio.Event` handshakes rather than by timing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord

from services.brain.double_texting import DoubleTextingPolicy
from services.brain.scheduler import PartitionScheduler, Work
from services.brain.turns import Turn
from services.channels.sms.profile import sms_profile
from services.channels.voipbin.profile import VoiceProfileSettings, voice_profile
from services.channels.webchat.profile import chat_profile
from services.common.consuming import PoisonEvent
from shared.contracts import (
    Channel,
    ChannelProfile,
    InboundMessage,
    MessageKind,
    Modality,
    ReplyMode,
    ReplyModeKind,
    TextFormat,
    utcnow,
)

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

A, B, C = b"conv-a", b"conv-b", b"conv-c"
WAIT_S = 2.0
"""Upper bound for anything that should happen promptly (a failure, never a pause)."""
SETTLE_S = 0.05
"""Small bounded pause before asserting that something did NOT happen."""
PROFILES = {
    Channel.CHAT: chat_profile(),
    Channel.SMS: sms_profile(),
    Channel.VOICE: voice_profile(VoiceProfileSettings()),
}
"""The built-in channels' profiles as their ingress sets them (`sms` helper: other windows)."""


# --- building blocks -----------------------------------------------------------------------


def record(offset: int, key: bytes | None, partition: int = 0) -> ConsumerRecord:
    return ConsumerRecord(
        topic="switchboard.inbound.v1",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=b"{}",
        checksum=None,
        serialized_key_size=len(key) if key else -1,
        serialized_value_size=2,
        headers=[],
    )


def message(
    channel: str,
    text: str = "hello",
    *,
    kind: MessageKind = MessageKind.TEXT,
    at: datetime | None = None,
    profile: ChannelProfile | None = None,
) -> InboundMessage:
    return InboundMessage(
        channel=channel,
        profile=profile or PROFILES[Channel(channel)],
        provider_message_id=uuid.uuid4().hex,
        address="+15551234567",
        conversation_id="conv",
        kind=kind,
        text=text,
        occurred_at=at or utcnow(),
    )


def work(offset: int, key: bytes | None, msg: InboundMessage, partition: int = 0) -> Work:
    return Work(record=record(offset, key, partition), message=msg)


def poison(offset: int, key: bytes | None) -> Work:
    return Work(
        record=record(offset, key),
        message=None,
        poison=PoisonEvent("invalid_event", "InboundMessage: text string_too_long"),
    )


def chat(offset: int, key: bytes | None, text: str = "hello") -> Work:
    return work(offset, key, message(Channel.CHAT, text))


def sms(offset: int, key: bytes | None, text: str, at: datetime, *, window_s: float = 0.2) -> Work:
    """A text on an SMS channel whose profile collects bursts for `window_s`."""
    profile = sms_profile(collect_window_ms=round(window_s * 1000))
    return work(offset, key, message(Channel.SMS, text, at=at, profile=profile))


def voice(offset: int, key: bytes | None, text: str, kind: MessageKind = MessageKind.TEXT) -> Work:
    return work(offset, key, message(Channel.VOICE, text, kind=kind))


def held_greeting(offset: int, key: bytes | None) -> Work:
    """A call's first `fetch`: a GREETING someone holds a request open for (SYNC)."""
    mode = ReplyMode(
        kind=ReplyModeKind.SYNC,
        deadline_at=utcnow() + timedelta(seconds=5),
        correlation_id=uuid.uuid4().hex,
        reply_to="ingress-1",
    )
    msg = message(Channel.VOICE, "", kind=MessageKind.GREETING).model_copy(update={"reply": mode})
    return work(offset, key, msg)


@dataclass
class Call:
    key: bytes | None
    offsets: list[int]
    turn: Turn | None
    batch: list[Work]


class FakeHandler:
    """Records calls; each call waits for its gate (its first offset) unless not blocking."""

    def __init__(self, *, blocking: bool = True, fail_once: Sequence[int] = ()) -> None:
        self.blocking = blocking
        self.calls: list[Call] = []
        self.returned: list[list[int]] = []
        self.cancelled: list[int] = []
        self.active = 0
        self.max_active = 0
        self._fail_once = set(fail_once)
        self._gates: dict[int, asyncio.Event] = {}
        self._started: dict[int, asyncio.Event] = {}

    def _gate(self, offset: int) -> asyncio.Event:
        return self._gates.setdefault(offset, asyncio.Event())

    def _start(self, offset: int) -> asyncio.Event:
        return self._started.setdefault(offset, asyncio.Event())

    def release(self, *offsets: int) -> None:
        for offset in offsets:
            self._gate(offset).set()

    def release_all(self) -> None:
        self.blocking = False
        for gate in self._gates.values():
            gate.set()

    async def started(self, offset: int) -> Call:
        await asyncio.wait_for(self._start(offset).wait(), WAIT_S)
        return next(call for call in self.calls if call.offsets[0] == offset)

    def offsets_of(self, key: bytes | None = None) -> list[list[int]]:
        return [c.offsets for c in self.calls if key is None or c.key == key]

    async def __call__(self, batch: Sequence[Work], turn: Turn | None) -> None:
        offsets = [w.record.offset for w in batch]
        head = offsets[0]
        self.calls.append(Call(batch[0].record.key, offsets, turn, list(batch)))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self._start(head).set()
        try:
            if head in self._fail_once:
                self._fail_once.discard(head)
                raise RuntimeError("handler bug")
            if self.blocking:
                await self._gate(head).wait()
        except asyncio.CancelledError:
            self.cancelled.append(head)
            raise
        finally:
            self.active -= 1
        self.returned.append(offsets)


async def eventually(condition: Callable[[], object], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def settle() -> None:
    await asyncio.sleep(SETTLE_S)


class Harness:
    """Builds schedulers and tears them down (gates opened, drained) after each test."""

    def __init__(self) -> None:
        self._made: list[tuple[PartitionScheduler, FakeHandler]] = []

    def scheduler(
        self,
        handler: FakeHandler,
        *,
        max_collected: int = 10,
        slots: asyncio.Semaphore | None = None,
        partition: int = 0,
    ) -> PartitionScheduler:
        sched = PartitionScheduler(
            partition,
            handler,
            DoubleTextingPolicy(max_collected=max_collected),
            slots or asyncio.Semaphore(16),
        )
        self._made.append((sched, handler))
        return sched

    async def close(self) -> None:
        for sched, handler in self._made:
            handler.release_all()
            await sched.drain(1.0)


@pytest_asyncio.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.close()


# --- ordering and concurrency --------------------------------------------------------------


async def test_one_key_runs_strictly_in_offset_order(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    for offset in (0, 1, 2):
        sched.add(chat(offset, A, f"message {offset}"))

    await handler.started(0)
    await settle()
    assert handler.offsets_of() == [[0]]  # 1 waits behind 0 although it could run

    handler.release(0)
    await handler.started(1)
    await settle()
    assert handler.offsets_of() == [[0], [1]]

    handler.release(1, 2)
    await eventually(lambda: len(handler.returned) == 3)
    assert handler.offsets_of() == [[0], [1], [2]]  # chat queues: one turn per message
    assert [c.turn.first.text for c in handler.calls if c.turn] == [
        "message 0",
        "message 1",
        "message 2",
    ]
    assert sched.offsets.to_commit() == 3
    assert sched.in_flight == 0


async def test_a_blocked_key_does_not_block_another_key(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(chat(0, A))
    sched.add(chat(1, B))
    sched.add(chat(2, A))
    sched.add(chat(3, B))

    await handler.started(0)
    await handler.started(1)  # B runs while A's turn is still open
    assert handler.active == 2

    handler.release(1, 3)
    await handler.started(3)
    await eventually(lambda: handler.returned == [[1], [3]])
    await settle()
    assert handler.offsets_of(A) == [[0]]  # A's second message still waits for its first
    assert sched.offsets.to_commit() is None  # 0 is unfinished: nothing may be committed
    assert sched.in_flight == 4

    handler.release(0)
    await handler.started(2)
    await eventually(lambda: sched.offsets.to_commit() == 2)
    assert sched.in_flight == 2  # 2 open, 3 finished behind it

    handler.release(2)
    await eventually(lambda: sched.offsets.to_commit() == 4)
    assert sched.in_flight == 0


async def test_offsets_finish_only_after_the_handler_returns(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(chat(7, A))
    await handler.started(7)
    await settle()
    assert sched.offsets.to_commit() is None
    assert sched.in_flight == 1

    handler.release(7)
    await eventually(lambda: sched.offsets.to_commit() == 8)
    assert handler.returned == [[7]]
    sched.offsets.committed(8)
    assert sched.offsets.to_commit() is None


async def test_the_shared_semaphore_bounds_concurrent_turns(harness: Harness) -> None:
    slots = asyncio.Semaphore(2)
    handler = FakeHandler()
    p0 = harness.scheduler(handler, slots=slots, partition=0)
    p1 = harness.scheduler(handler, slots=slots, partition=1)
    p0.add(chat(0, A))
    p0.add(chat(1, B))
    p1.add(work(100, C, message(Channel.CHAT), partition=1))

    await eventually(lambda: len(handler.calls) == 2)
    await settle()
    assert len(handler.calls) == 2  # the third key waits for a slot, across partitions
    assert handler.max_active == 2
    assert {c.key for c in handler.calls} == {A, B}  # runners take slots in arrival order

    handler.release(handler.calls[0].offsets[0])
    await handler.started(100)
    assert {c.key for c in handler.calls} == {A, B, C}
    assert handler.max_active == 2

    handler.release_all()
    await eventually(lambda: p0.offsets.to_commit() == 2 and p1.offsets.to_commit() == 101)
    assert handler.max_active == 2


async def test_a_key_that_went_idle_runs_again_on_new_work(harness: Harness) -> None:
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    sched.add(chat(0, A))
    await eventually(lambda: sched.offsets.to_commit() == 1)
    sched.add(chat(1, A))
    await eventually(lambda: sched.offsets.to_commit() == 2)
    assert handler.offsets_of() == [[0], [1]]


async def test_a_failing_handler_is_retried_with_the_same_batch_never_skipped(
    harness: Harness,
) -> None:
    handler = FakeHandler(blocking=False, fail_once=[0])
    sched = harness.scheduler(handler)
    sched.add(chat(0, A))
    sched.add(chat(1, A))
    await handler.started(0)
    await settle()
    assert sched.offsets.to_commit() is None
    assert handler.offsets_of() == [[0]]  # 1 does not jump ahead of the failed 0

    await eventually(lambda: sched.offsets.to_commit() == 2, timeout_s=3.0)
    assert handler.offsets_of() == [[0], [0], [1]]
    assert handler.returned == [[0], [1]]


# --- SMS: collect a burst ------------------------------------------------------------------


async def test_sms_burst_within_the_window_is_one_turn(harness: Harness) -> None:
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    begun = time.monotonic()
    sched.add(sms(0, A, "hi", utcnow()))
    await asyncio.sleep(0.03)
    assert handler.calls == []  # the window is open: the turn waits for more texts
    sched.add(sms(1, A, "one more thing", utcnow()))
    await asyncio.sleep(0.03)
    sched.add(sms(2, A, "my order is late", utcnow()))

    await eventually(lambda: handler.returned)
    elapsed = time.monotonic() - begun
    assert handler.offsets_of() == [[0, 1, 2]]
    turn = handler.calls[0].turn
    assert turn is not None
    assert [m.text for m in turn.messages] == ["hi", "one more thing", "my order is late"]
    assert elapsed >= 0.06 + 0.15  # stayed open a window after the last text
    assert sched.offsets.to_commit() == 3

    # A text after the window has closed is a turn of its own.
    sched.add(sms(3, A, "hello?", utcnow()))
    await eventually(lambda: len(handler.returned) == 2)
    assert handler.offsets_of() == [[0, 1, 2], [3]]
    assert sched.offsets.to_commit() == 4


async def test_a_lone_sms_waits_out_the_window_then_runs_alone(harness: Harness) -> None:
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    begun = time.monotonic()
    sched.add(sms(0, A, "hi", utcnow()))
    await eventually(lambda: handler.returned)
    assert time.monotonic() - begun >= 0.15
    assert handler.offsets_of() == [[0]]


async def test_sms_gap_beyond_the_window_splits_the_burst(harness: Harness) -> None:
    """Old texts (consumer lag): the window is long past, so bursts form from gaps alone."""
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    t0 = utcnow() - timedelta(seconds=30)
    # Gaps to the previous text: 0.1, 0.2 (exactly the window: joins), 0.25 (beyond), 0.05.
    times = [0.0, 0.1, 0.3, 0.55, 0.6]
    for offset, at in enumerate(times):
        sched.add(sms(offset, A, f"text {offset}", t0 + timedelta(seconds=at)))
    await eventually(lambda: sched.offsets.to_commit() == 5)
    assert handler.offsets_of() == [[0, 1, 2], [3, 4]]


async def test_sms_burst_is_capped_at_max_collected(harness: Harness) -> None:
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler, max_collected=2)
    t0 = utcnow() - timedelta(seconds=30)
    for offset in range(5):
        at = t0 + timedelta(seconds=offset * 0.1)
        sched.add(sms(offset, A, f"text {offset}", at, window_s=5.0))
    await eventually(lambda: sched.offsets.to_commit() == 5, timeout_s=WAIT_S)
    assert handler.offsets_of() == [[0, 1], [2, 3], [4]]


async def test_sms_burst_is_closed_by_poison_and_other_channels(harness: Harness) -> None:
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    t0 = utcnow() - timedelta(seconds=30)
    sched.add(sms(0, A, "a", t0))
    sched.add(poison(1, A))
    sched.add(sms(2, A, "b", t0 + timedelta(seconds=0.01)))
    sched.add(work(3, A, message(Channel.VOICE, "c", at=t0 + timedelta(seconds=0.02))))
    sched.add(sms(4, A, "d", t0 + timedelta(seconds=0.03)))
    sched.add(sms(5, A, "e", t0 + timedelta(seconds=0.04)))
    await eventually(lambda: sched.offsets.to_commit() == 6)
    assert handler.offsets_of() == [[0], [1], [2], [3], [4, 5]]
    assert handler.calls[1].turn is None


async def test_window_zero_never_collects(harness: Harness) -> None:
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    now = utcnow()
    for offset in range(3):
        sched.add(sms(offset, A, f"text {offset}", now, window_s=0.0))
    await eventually(lambda: sched.offsets.to_commit() == 3)
    assert handler.offsets_of() == [[0], [1], [2]]


def retry(offset: int, key: bytes | None, original: Work, *, after_s: float = 0.05) -> Work:
    """A provider retry of `original`'s message: same provider id, new event, later stamp."""
    assert original.message is not None
    copy = original.message.model_copy(
        update={
            "event_id": uuid.uuid4().hex,
            "occurred_at": original.message.occurred_at + timedelta(seconds=after_s),
        }
    )
    return work(offset, key, copy)


async def test_provider_retries_inside_a_burst_are_one_text_of_its_one_turn(
    harness: Harness,
) -> None:
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    now = utcnow()
    first = sms(0, A, "change my address", now)
    sched.add(first)
    sched.add(retry(1, A, first))
    sched.add(sms(2, A, "to 5 Elm Street", now + timedelta(seconds=0.01)))
    sched.add(retry(3, A, first, after_s=0.02))

    await eventually(lambda: handler.returned)
    assert handler.offsets_of() == [[0, 1, 2, 3]]  # every copy's offset finishes with the turn
    turn = handler.calls[0].turn
    assert turn is not None
    assert [m.text for m in turn.messages] == ["change my address", "to 5 Elm Street"]
    assert [m.event_id for m in turn.copies] == [
        w.message.event_id for w in handler.calls[0].batch[1::2] if w.message
    ]
    assert sched.offsets.to_commit() == 4


async def test_retries_do_not_count_toward_the_burst_cap(harness: Harness) -> None:
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler, max_collected=2)
    t0 = utcnow() - timedelta(seconds=30)
    first = sms(0, A, "a", t0)
    sched.add(first)
    sched.add(retry(1, A, first, after_s=0.01))
    sched.add(retry(2, A, first, after_s=0.02))
    sched.add(sms(3, A, "b", t0 + timedelta(seconds=0.03)))
    sched.add(sms(4, A, "c", t0 + timedelta(seconds=0.04)))
    await eventually(lambda: sched.offsets.to_commit() == 5)
    assert handler.offsets_of() == [[0, 1, 2, 3], [4]]


async def test_a_retry_does_not_hold_the_burst_open(harness: Harness) -> None:
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    t0 = utcnow() - timedelta(seconds=30)
    first = sms(0, A, "a", t0)
    sched.add(first)
    sched.add(sms(1, A, "b", t0 + timedelta(seconds=0.1)))
    sched.add(retry(2, A, first, after_s=0.19))  # stamped late by ingress: no new text
    # 0.25 s after "b" (0.06 s after the retry): beyond the window, a new burst.
    sched.add(sms(3, A, "c", t0 + timedelta(seconds=0.35)))
    await eventually(lambda: sched.offsets.to_commit() == 4)
    assert handler.offsets_of() == [[0, 1, 2], [3]]


async def test_a_retry_after_the_burst_was_handled_is_a_turn_of_its_own(harness: Harness) -> None:
    """The scheduler cannot know the earlier turn was answered: memory's processed record
    filters it out under the lock (see `TurnProcessor.run`)."""
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    first = sms(0, A, "a", utcnow(), window_s=0.05)
    sched.add(first)
    await eventually(lambda: sched.offsets.to_commit() == 1)
    sched.add(retry(1, A, first))
    await eventually(lambda: sched.offsets.to_commit() == 2)
    assert handler.offsets_of() == [[0], [1]]


# --- voice: interrupt ----------------------------------------------------------------------


async def test_newer_voice_text_interrupts_the_running_voice_turn(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(voice(0, A, "what are your opening hours"))
    running = (await handler.started(0)).turn
    assert running is not None
    assert not running.interrupted.is_set()

    sched.add(voice(1, A, "", MessageKind.CALL_STARTED))
    sched.add(voice(2, A, "   "))
    sched.add(voice(3, B, "another caller"))
    sched.add(chat(4, A, "typed in the chat"))
    sched.add(poison(5, A))
    assert not running.interrupted.is_set()

    sched.add(voice(6, A, "actually, never mind"))
    assert running.interrupted.is_set()  # synchronously, on add

    handler.release_all()
    await eventually(lambda: sched.offsets.to_commit() == 7)
    # The newer utterance is still answered, in order, as its own (uninterrupted) turn.
    assert handler.offsets_of(A) == [[0], [1], [2], [4], [5], [6]]
    newer = next(c.turn for c in handler.calls if c.offsets == [6])
    assert newer is not None and not newer.interrupted.is_set()
    assert handler.offsets_of(B) == [[3]]
    b_turn = next(c.turn for c in handler.calls if c.key == B)
    assert b_turn is not None and not b_turn.interrupted.is_set()


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (MessageKind.PARTIAL_TRANSCRIPT, "actu"),
        (MessageKind.PARTIAL_TRANSCRIPT, ""),  # speech started, no words yet
        (MessageKind.DTMF, "1"),
        (MessageKind.CALL_ENDED, ""),
    ],
    ids=["partial", "speech_started", "dtmf", "call_ended"],
)
async def test_the_caller_speaking_pressing_keys_or_hanging_up_interrupts_the_voice_answer(
    harness: Harness, kind: MessageKind, text: str
) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(voice(0, A, "what are your opening hours"))
    running = (await handler.started(0)).turn
    assert running is not None

    sched.add(voice(1, A, text, kind))

    assert running.interrupted.is_set()
    handler.release_all()
    await eventually(lambda: sched.offsets.to_commit() == 2)
    assert handler.offsets_of(A) == [[0], [1]]  # the interrupting event is handled too


async def test_a_streamed_keypad_answer_is_interrupted_like_an_utterance(
    harness: Harness,
) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(voice(0, A, "2", MessageKind.DTMF))
    running = (await handler.started(0)).turn
    assert running is not None
    sched.add(voice(1, A, "", MessageKind.CALL_STARTED))
    assert not running.interrupted.is_set()
    sched.add(voice(2, A, "", MessageKind.PARTIAL_TRANSCRIPT))
    assert running.interrupted.is_set()


async def test_a_held_greeting_is_never_interrupted(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(held_greeting(0, A))
    running = (await handler.started(0)).turn
    assert running is not None

    sched.add(voice(1, A, "hello?", MessageKind.PARTIAL_TRANSCRIPT))
    sched.add(voice(2, A, "hello is anyone there"))
    sched.add(voice(3, A, "", MessageKind.CALL_ENDED))

    assert not running.interrupted.is_set()
    handler.release_all()
    await eventually(lambda: sched.offsets.to_commit() == 4)


async def test_a_partial_behind_a_queued_utterance_leaves_it_to_be_answered(
    harness: Harness,
) -> None:
    """The caller's final utterance is answered although they began speaking again; the
    partial's STOP is dropped, since it would cut the very answer it predates."""
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(voice(0, A, "what are your opening hours"))
    await handler.started(0)
    sched.add(voice(1, A, "and on sunday"))
    sched.add(voice(2, A, "so", MessageKind.PARTIAL_TRANSCRIPT))

    handler.release(0)
    queued = (await handler.started(1)).turn
    assert queued is not None and not queued.interrupted.is_set()
    handler.release_all()
    await eventually(lambda: sched.offsets.to_commit() == 3)
    assert handler.offsets_of(A) == [[0], [1]]  # 2 finished without a turn
    assert sched.in_flight == 0


async def test_a_partial_with_no_answer_queued_before_it_is_handled(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(voice(0, A, "", MessageKind.CALL_STARTED))
    await handler.started(0)
    sched.add(voice(1, A, "", MessageKind.PARTIAL_TRANSCRIPT))
    handler.release_all()
    await eventually(lambda: sched.offsets.to_commit() == 2)
    assert handler.offsets_of(A) == [[0], [1]]


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (MessageKind.TEXT, "no wait, saturday"),
        (MessageKind.DTMF, "3"),
        (MessageKind.CALL_ENDED, ""),
    ],
    ids=["text", "dtmf", "call_ended"],
)
async def test_a_newer_final_input_makes_a_queued_voice_answer_moot(
    harness: Harness, kind: MessageKind, text: str
) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(voice(0, A, "what are your opening hours"))
    await handler.started(0)
    sched.add(voice(1, A, "and on sunday"))
    sched.add(voice(2, A, text, kind))

    handler.release(0)
    queued = (await handler.started(1)).turn
    assert queued is not None and queued.interrupted.is_set()
    handler.release_all()
    await eventually(lambda: sched.offsets.to_commit() == 3)
    assert handler.offsets_of(A) == [[0], [1], [2]]


async def test_a_queued_utterance_with_a_newer_one_behind_it_starts_interrupted(
    harness: Harness,
) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(voice(0, A, "what are your opening hours"))
    await handler.started(0)
    sched.add(voice(1, A, "and on sunday"))
    sched.add(voice(2, A, "no wait, saturday"))

    handler.release_all()
    await eventually(lambda: sched.offsets.to_commit() == 3)

    interrupted = {c.offsets[0]: c.turn.interrupted.is_set() for c in handler.calls if c.turn}
    assert interrupted == {0: True, 1: True, 2: False}


@pytest.mark.parametrize(
    ("channel", "profile"),
    [
        (Channel.CHAT, chat_profile()),
        (Channel.SMS, sms_profile(collect_window_ms=50)),
        ("kiosk", ChannelProfile()),  # a made-up text channel with the default profile
    ],
    ids=["chat", "sms", "kiosk"],
)
async def test_non_voice_turns_are_not_interrupted(
    harness: Harness, channel: str, profile: ChannelProfile
) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(work(0, A, message(channel, "first", profile=profile)))
    running = (await handler.started(0)).turn
    assert running is not None
    sched.add(voice(1, A, "a voice utterance"))
    sched.add(work(2, A, message(channel, "second", profile=profile)))
    assert not running.interrupted.is_set()


async def test_voice_after_the_turn_finished_interrupts_nothing(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(voice(0, A, "first"))
    first = (await handler.started(0)).turn
    handler.release(0)
    await eventually(lambda: sched.offsets.to_commit() == 1)
    sched.add(voice(1, A, "second"))
    await handler.started(1)
    assert first is not None and not first.interrupted.is_set()


# --- the profile decides, not the channel's name ------------------------------------------


async def test_a_made_up_channel_with_a_collect_window_has_its_bursts_collected(
    harness: Harness,
) -> None:
    kiosk = ChannelProfile(text_format=TextFormat.GSM7, max_segments=2, collect_window_ms=200)
    handler = FakeHandler(blocking=False)
    sched = harness.scheduler(handler)
    now = utcnow()
    for offset, text in enumerate(["hi", "one more thing"]):
        at = now + timedelta(seconds=offset * 0.01)
        sched.add(work(offset, A, message("kiosk", text, at=at, profile=kiosk)))
    sched.add(sms(2, A, "from my phone", now + timedelta(seconds=0.02)))  # another channel

    await eventually(lambda: sched.offsets.to_commit() == 3)
    assert handler.offsets_of() == [[0, 1], [2]]


async def test_a_made_up_speech_channel_is_interrupted_by_its_caller(harness: Harness) -> None:
    phone = ChannelProfile(
        modality=Modality.SPEECH,
        text_format=TextFormat.SPEAKABLE,
        interruptible=True,
        streams_parts=True,
    )
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(work(0, A, message("phone", "what are your hours", profile=phone)))
    running = (await handler.started(0)).turn
    assert running is not None

    sched.add(voice(1, A, "", MessageKind.PARTIAL_TRANSCRIPT))  # the same customer, on voice
    assert not running.interrupted.is_set()
    speaking = message("phone", "", kind=MessageKind.PARTIAL_TRANSCRIPT, profile=phone)
    sched.add(work(2, A, speaking))
    assert running.interrupted.is_set()


# --- poison --------------------------------------------------------------------------------


async def test_poison_is_its_own_batch_without_a_turn_in_order(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(chat(0, A, "before"))
    sched.add(poison(1, A))
    sched.add(chat(2, A, "after"))

    await handler.started(0)
    handler.release(0)
    bad = await handler.started(1)
    await settle()
    assert handler.offsets_of() == [[0], [1]]  # 2 waits for the poison to be handled
    assert bad.turn is None
    assert len(bad.batch) == 1
    assert bad.batch[0].message is None
    assert isinstance(bad.batch[0].poison, PoisonEvent)
    assert bad.batch[0].poison.reason == "invalid_event"
    assert sched.offsets.to_commit() == 1  # dead-lettering is not done yet

    handler.release(1, 2)
    await eventually(lambda: sched.offsets.to_commit() == 3)
    assert handler.offsets_of() == [[0], [1], [2]]
    after = handler.calls[2].turn
    assert after is not None and [m.text for m in after.messages] == ["after"]


# --- drain ---------------------------------------------------------------------------------


async def test_drain_finishes_quick_turns_cancels_stuck_ones(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(chat(10, A))  # will finish during the drain
    sched.add(chat(11, B))  # stuck
    sched.add(chat(12, A))  # queued behind 10: never started once draining
    await handler.started(10)
    await handler.started(11)

    begun = time.monotonic()
    draining = asyncio.create_task(sched.drain(0.3))
    await asyncio.sleep(0)
    handler.release(10)
    await asyncio.wait_for(draining, WAIT_S)
    elapsed = time.monotonic() - begun

    assert 0.25 <= elapsed < 1.5
    assert handler.returned == [[10]]
    assert handler.cancelled == [11]
    assert handler.offsets_of() == [[10], [11]]  # 12 was not started
    assert sched.offsets.to_commit() == 11  # stops before the cancelled 11
    assert sched.in_flight == 2

    sched.add(chat(13, C))  # after drain: accepted for accounting, never run
    await settle()
    assert handler.offsets_of() == [[10], [11]]
    assert sched.offsets.to_commit() == 11


async def test_drain_returns_as_soon_as_running_turns_finish(harness: Harness) -> None:
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(chat(0, A))
    await handler.started(0)
    draining = asyncio.create_task(sched.drain(10.0))
    await asyncio.sleep(0)
    handler.release(0)
    await asyncio.wait_for(draining, 1.0)
    assert handler.cancelled == []
    assert sched.offsets.to_commit() == 1


async def test_drain_with_nothing_running_returns_at_once(harness: Harness) -> None:
    sched = harness.scheduler(FakeHandler())
    await asyncio.wait_for(sched.drain(10.0), 0.5)
    assert sched.offsets.to_commit() is None


async def test_drain_starts_no_turn_for_a_key_waiting_for_a_slot(harness: Harness) -> None:
    """'Stop starting turns': B queued for the only slot must not start once draining."""
    handler = FakeHandler()
    sched = harness.scheduler(handler, slots=asyncio.Semaphore(1))
    sched.add(chat(0, A))
    sched.add(chat(1, B))
    await handler.started(0)
    await settle()
    assert handler.offsets_of() == [[0]]

    draining = asyncio.create_task(sched.drain(1.0))
    await asyncio.sleep(0)
    handler.release(0)
    await settle()
    assert handler.offsets_of() == [[0]]  # B must not begin after drain began
    handler.release_all()
    await asyncio.wait_for(draining, WAIT_S)


async def test_drain_starts_no_turn_for_an_sms_burst_still_collecting(harness: Harness) -> None:
    """'Stop starting turns': a burst whose window closes during the drain is left alone."""
    handler = FakeHandler()
    sched = harness.scheduler(handler)
    sched.add(sms(0, A, "hi", utcnow(), window_s=0.1))
    await settle()
    assert handler.calls == []
    draining = asyncio.create_task(sched.drain(0.5))
    await asyncio.sleep(0.2)  # the window closes while draining
    assert handler.calls == []
    handler.release_all()
    await asyncio.wait_for(draining, WAIT_S)
