"""DoubleTextingPolicy: chat queues, SMS collects a burst, voice interrupts, each because of
its channel profile (collect window, interruptible speech), never because of its name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.brain.double_texting import DoubleTextingPolicy, distinct
from services.brain.turns import Turn
from services.channels.sms.profile import sms_profile
from services.channels.voipbin.profile import VoiceProfileSettings, voice_profile
from services.channels.webchat.profile import chat_profile
from shared.contracts import (
    Channel,
    ChannelProfile,
    InboundMessage,
    MessageKind,
    Modality,
    ReplyMode,
    ReplyModeKind,
    TextFormat,
)

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

PROFILES = {
    Channel.CHAT: chat_profile(),
    Channel.SMS: sms_profile(collect_window_ms=2000),
    Channel.VOICE: voice_profile(VoiceProfileSettings()),
}
"""The built-in channels' profiles, as their ingress sets them (2 s SMS collect window)."""


def message(
    channel: str,
    *,
    at: datetime = T0,
    kind: MessageKind = MessageKind.TEXT,
    text: str = "hello",
    profile: ChannelProfile | None = None,
) -> InboundMessage:
    return InboundMessage(
        channel=channel,
        profile=profile or PROFILES[Channel(channel)],
        provider_message_id=uuid.uuid4().hex,
        address="+15551234567",
        conversation_id="conv-1",
        kind=kind,
        text=text,
        occurred_at=at,
    )


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


POLICY = DoubleTextingPolicy()
NEVER_COLLECTS = sms_profile(collect_window_ms=0)


def test_default_max_collected() -> None:
    assert POLICY.max_collected == 10


def test_chat_never_collects_nor_interrupts() -> None:
    first = message(Channel.CHAT)
    second = message(Channel.CHAT, at=later(0.1))
    assert not POLICY.collects(first)
    assert not POLICY.joins(first, second)
    assert not POLICY.joins(first, message(Channel.CHAT))  # even at the same instant
    assert not DoubleTextingPolicy.interrupts(first, second)


def test_sms_text_collects() -> None:
    assert POLICY.collects(message(Channel.SMS))


def test_voice_and_non_text_do_not_collect() -> None:
    assert not POLICY.collects(message(Channel.VOICE))
    assert not POLICY.collects(message(Channel.SMS, kind=MessageKind.DTMF, text="1"))
    assert not POLICY.collects(message(Channel.SMS, kind=MessageKind.IDENTITY_LINKED, text=""))


@pytest.mark.parametrize(
    ("gap_s", "joins"),
    [
        (0.0, True),
        (0.5, True),
        (2.0, True),  # exactly the window: still the same burst
        (2.000001, False),  # a microsecond beyond: a new turn
        (2.5, False),
        (60.0, False),
    ],
)
def test_sms_joins_within_the_window_and_not_beyond(gap_s: float, joins: bool) -> None:
    previous = message(Channel.SMS)
    assert POLICY.joins(previous, message(Channel.SMS, at=later(gap_s))) is joins


def test_a_burst_joins_only_texts_of_its_own_channel() -> None:
    sms = message(Channel.SMS)
    assert not POLICY.joins(sms, message(Channel.CHAT, at=later(0.1)))
    assert not POLICY.joins(sms, message(Channel.VOICE, at=later(0.1)))
    assert not POLICY.joins(sms, message(Channel.SMS, at=later(0.1), kind=MessageKind.DTMF))
    assert not POLICY.joins(message(Channel.CHAT), message(Channel.SMS, at=later(0.1)))


def test_window_zero_disables_collecting() -> None:
    first = message(Channel.SMS, profile=NEVER_COLLECTS)
    assert not POLICY.collects(first)
    same_instant = message(Channel.SMS, profile=NEVER_COLLECTS)
    assert not POLICY.joins(first, same_instant)  # still separate


def test_wait_s_is_what_is_left_of_the_window_after_the_last_text() -> None:
    last = message(Channel.SMS)
    assert POLICY.wait_s(last, now=T0) == pytest.approx(2.0)
    assert POLICY.wait_s(last, now=later(0.5)) == pytest.approx(1.5)
    assert POLICY.wait_s(last, now=later(2.0)) == pytest.approx(0.0)
    assert POLICY.wait_s(last, now=later(3.0)) == pytest.approx(-1.0)


def test_wait_s_defaults_to_the_wall_clock() -> None:
    fresh = message(Channel.SMS, at=datetime.now(UTC))
    assert 1.0 < POLICY.wait_s(fresh) <= 2.0
    old = message(Channel.SMS, at=datetime.now(UTC) - timedelta(seconds=10))
    assert POLICY.wait_s(old) < -7.0


def test_voice_newer_final_text_interrupts_a_running_voice_turn() -> None:
    running = message(Channel.VOICE, text="what are your hours")
    newer = message(Channel.VOICE, at=later(1), text="actually, never mind")
    assert DoubleTextingPolicy.interrupts(running, newer)
    assert POLICY.interrupts(running, newer)


def test_a_copy_of_the_same_utterance_neither_interrupts_nor_supersedes_it() -> None:
    # VoIPBin retries and races deliver one transcript several times; the copies must not
    # make the turn moot, or it is recorded as interrupted and never answered.
    running = message(Channel.VOICE, text="is my parcel on its way")
    copy = running.model_copy(update={"event_id": uuid.uuid4().hex})
    assert not DoubleTextingPolicy.interrupts(running, copy)
    assert not DoubleTextingPolicy.supersedes(running, copy)


BARGE_INS = {
    "partial": message(Channel.VOICE, kind=MessageKind.PARTIAL_TRANSCRIPT, text="actually"),
    "speech_started": message(Channel.VOICE, kind=MessageKind.PARTIAL_TRANSCRIPT, text=""),
    "text": message(Channel.VOICE, text="actually, never mind"),
    "dtmf": message(Channel.VOICE, kind=MessageKind.DTMF, text="5"),
    "call_ended": message(Channel.VOICE, kind=MessageKind.CALL_ENDED, text=""),
}
NOT_BARGE_INS = {
    "empty": message(Channel.VOICE, text=""),
    "blank": message(Channel.VOICE, text="   "),
    "no_keys": message(Channel.VOICE, kind=MessageKind.DTMF, text=""),
    "call_started": message(Channel.VOICE, kind=MessageKind.CALL_STARTED, text=""),
    "greeting": message(Channel.VOICE, kind=MessageKind.GREETING, text=""),
    "sms": message(Channel.SMS, text="are you there"),
    "chat": message(Channel.CHAT, text="are you there"),
}


def held(msg: InboundMessage) -> InboundMessage:
    """`msg` with a request held open for its answer (VoIPBin `fetch`: reply mode SYNC)."""
    mode = ReplyMode(
        kind=ReplyModeKind.SYNC,
        deadline_at=later(5),
        correlation_id="corr-1",
        reply_to="ingress-1",
    )
    return msg.model_copy(update={"reply": mode})


STREAMED_ANSWERS = {
    "text": message(Channel.VOICE, text="what are your hours"),
    "dtmf": message(Channel.VOICE, kind=MessageKind.DTMF, text="1"),
    "greeting": message(Channel.VOICE, kind=MessageKind.GREETING, text=""),
}


@pytest.mark.parametrize("running", STREAMED_ANSWERS.values(), ids=STREAMED_ANSWERS.keys())
@pytest.mark.parametrize("newer", BARGE_INS.values(), ids=BARGE_INS.keys())
def test_the_caller_speaking_keys_or_hangup_interrupt_a_streamed_voice_answer(
    running: InboundMessage, newer: InboundMessage
) -> None:
    assert DoubleTextingPolicy.interrupts(running, newer)


@pytest.mark.parametrize("newer", NOT_BARGE_INS.values(), ids=NOT_BARGE_INS.keys())
def test_voice_is_not_interrupted_by_empty_input_call_setup_or_other_channels(
    newer: InboundMessage,
) -> None:
    running = message(Channel.VOICE, text="what are your hours")
    assert not DoubleTextingPolicy.interrupts(running, newer)
    assert not DoubleTextingPolicy.supersedes(running, newer)


@pytest.mark.parametrize(
    "running",
    [
        held(message(Channel.VOICE, kind=MessageKind.GREETING, text="")),
        held(message(Channel.VOICE, kind=MessageKind.DTMF, text="1")),
    ],
    ids=["greeting", "dtmf"],
)
@pytest.mark.parametrize("newer", BARGE_INS.values(), ids=BARGE_INS.keys())
def test_a_whole_answer_for_a_held_request_is_never_interrupted(
    running: InboundMessage, newer: InboundMessage
) -> None:
    assert not DoubleTextingPolicy.interrupts(running, newer)
    assert not DoubleTextingPolicy.supersedes(running, newer)


@pytest.mark.parametrize(
    "running",
    [
        message(Channel.VOICE, kind=MessageKind.PARTIAL_TRANSCRIPT, text="hi"),
        message(Channel.VOICE, kind=MessageKind.CALL_STARTED, text=""),
        message(Channel.VOICE, kind=MessageKind.CALL_ENDED, text=""),
    ],
    ids=["partial", "call_started", "call_ended"],
)
def test_call_control_is_never_interrupted(running: InboundMessage) -> None:
    for newer in BARGE_INS.values():
        assert not DoubleTextingPolicy.interrupts(running, newer)


@pytest.mark.parametrize(
    ("newer", "moot"),
    [
        (BARGE_INS["text"], True),
        (BARGE_INS["dtmf"], True),
        (BARGE_INS["call_ended"], True),
        (BARGE_INS["partial"], False),  # the start of the next utterance: answer this one
        (BARGE_INS["speech_started"], False),
    ],
    ids=["text", "dtmf", "call_ended", "partial", "speech_started"],
)
def test_only_a_newer_final_input_makes_a_queued_voice_answer_moot(
    newer: InboundMessage, moot: bool
) -> None:
    queued = message(Channel.VOICE, text="what are your hours")
    assert DoubleTextingPolicy.supersedes(queued, newer) is moot


def test_a_partial_queued_behind_a_starting_voice_answer_predates_it() -> None:
    partial = BARGE_INS["partial"]
    for answering in (*STREAMED_ANSWERS.values(), held(STREAMED_ANSWERS["greeting"])):
        assert DoubleTextingPolicy.predates_answer(partial, answering)
    control = message(Channel.VOICE, kind=MessageKind.CALL_STARTED, text="")
    assert not DoubleTextingPolicy.predates_answer(partial, control)
    assert not DoubleTextingPolicy.predates_answer(partial, message(Channel.CHAT))
    assert not DoubleTextingPolicy.predates_answer(BARGE_INS["text"], STREAMED_ANSWERS["text"])


@pytest.mark.parametrize("channel", [Channel.CHAT, Channel.SMS])
def test_non_voice_running_turns_are_never_interrupted(channel: Channel) -> None:
    running = message(channel)
    assert not DoubleTextingPolicy.interrupts(running, message(Channel.VOICE, at=later(1)))
    assert not DoubleTextingPolicy.interrupts(running, message(channel, at=later(1)))


# --- provider retries: one provider message is one text of its turn ------------------------


def retry_of(original: InboundMessage, *, after_s: float = 0.3) -> InboundMessage:
    """A provider retry as ingress publishes it: same message id, new event, its own time."""
    return original.model_copy(
        update={
            "event_id": uuid.uuid4().hex,
            "occurred_at": original.occurred_at + timedelta(seconds=after_s),
        }
    )


def test_a_turn_keeps_each_provider_message_once_in_order() -> None:
    first = message(Channel.SMS, text="change my address")
    second = message(Channel.SMS, at=later(0.5), text="to 5 Elm Street")
    copy_1, copy_2 = retry_of(first), retry_of(first, after_s=0.9)

    turn = Turn([first, copy_1, second, copy_2])

    assert turn.messages == [first, second]
    assert turn.copies == [copy_1, copy_2]
    assert turn.first is first


def test_a_turn_without_copies_is_unchanged() -> None:
    texts = [message(Channel.SMS, at=later(i * 0.1), text=f"text {i}") for i in range(3)]
    turn = Turn(list(texts))
    assert turn.messages == texts
    assert turn.copies == []


def test_the_same_provider_id_on_another_channel_is_not_a_copy() -> None:
    sms = message(Channel.SMS, text="hi")
    chat = sms.model_copy(
        update={"event_id": uuid.uuid4().hex, "channel": Channel.CHAT, "profile": chat_profile()}
    )
    assert Turn([sms, chat]).messages == [sms, chat]


def test_distinct_splits_copies_from_first_occurrences() -> None:
    first = message(Channel.SMS, text="a")
    copy = retry_of(first)
    other = message(Channel.SMS, text="b")
    assert distinct([copy, first, other, first]) == ([copy, other], [first, first])
    assert distinct([]) == ([], [])


def test_a_retry_of_a_text_in_the_burst_is_absorbed_not_joined() -> None:
    first = message(Channel.SMS, text="a")
    second = message(Channel.SMS, at=later(1.0), text="b")
    late_copy = retry_of(first, after_s=30)  # a retry long after: still the same text
    assert POLICY.absorbs([first, second], late_copy)
    assert not POLICY.absorbs([first, second], message(Channel.SMS, at=later(1.1)))
    # Only collected texts are absorbed into a burst.
    chat = message(Channel.CHAT)
    assert not POLICY.absorbs([chat], retry_of(chat))
    uncollected = message(Channel.SMS, text="a", profile=NEVER_COLLECTS)
    assert not POLICY.absorbs([uncollected], retry_of(uncollected))


# --- the profile decides, not the channel's name ------------------------------------------

KIOSK = ChannelProfile(text_format=TextFormat.GSM7, max_segments=2, collect_window_ms=500)
"""A made-up texting channel that collects bursts like SMS, with its own window."""
PHONE = ChannelProfile(
    modality=Modality.SPEECH,
    text_format=TextFormat.SPEAKABLE,
    interruptible=True,
    streams_parts=True,
)
"""A made-up phone channel (another voice provider): interruptible speech."""


def test_any_channel_with_a_collect_window_collects_within_its_own_window() -> None:
    first = message("kiosk", profile=KIOSK)
    assert POLICY.collects(first)
    assert POLICY.joins(first, message("kiosk", at=later(0.5), profile=KIOSK))
    assert not POLICY.joins(first, message("kiosk", at=later(0.6), profile=KIOSK))
    assert POLICY.wait_s(first, now=later(0.2)) == pytest.approx(0.3)
    assert POLICY.absorbs([first], retry_of(first, after_s=5))


def test_a_burst_never_spans_two_collecting_channels() -> None:
    sms, kiosk = message(Channel.SMS), message("kiosk", at=later(0.1), profile=KIOSK)
    assert POLICY.collects(sms) and POLICY.collects(kiosk)
    assert not POLICY.joins(sms, kiosk)
    assert not POLICY.joins(kiosk, message(Channel.SMS, at=later(0.2)))


def test_a_built_in_name_with_another_profile_behaves_as_the_profile_says() -> None:
    assert POLICY.collects(message(Channel.CHAT, profile=sms_profile()))
    texted_voice = message(Channel.VOICE, profile=chat_profile(), text="what are your hours")
    assert not DoubleTextingPolicy.interrupts(
        texted_voice, message(Channel.VOICE, at=later(1), profile=chat_profile())
    )


def test_spoken_channels_never_collect_even_with_a_window() -> None:
    windowed = PHONE.model_copy(update={"collect_window_ms": 2000})
    assert not POLICY.collects(message("phone", profile=windowed))


def test_a_text_channel_with_the_default_profile_queues() -> None:
    default = ChannelProfile()
    first = message("kiosk", profile=default)
    second = message("kiosk", at=later(0.1), profile=default)
    assert not POLICY.collects(first)
    assert not POLICY.joins(first, second)
    assert not DoubleTextingPolicy.interrupts(first, second)
    assert not DoubleTextingPolicy.supersedes(first, second)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (MessageKind.TEXT, "actually, never mind"),
        (MessageKind.PARTIAL_TRANSCRIPT, "actu"),
        (MessageKind.DTMF, "5"),
        (MessageKind.CALL_ENDED, ""),
    ],
    ids=["text", "partial", "dtmf", "call_ended"],
)
def test_any_interruptible_speech_channel_is_interrupted_by_its_own_caller(
    kind: MessageKind, text: str
) -> None:
    running = message("phone", profile=PHONE, text="what are your hours")
    newer = message("phone", at=later(1), kind=kind, text=text, profile=PHONE)
    assert DoubleTextingPolicy.interrupts(running, newer)
    on_voice = message(Channel.VOICE, at=later(1), kind=kind, text=text)
    assert not DoubleTextingPolicy.interrupts(running, on_voice)  # another call's channel


def test_a_speech_channel_that_is_not_interruptible_finishes_its_answer() -> None:
    patient = PHONE.model_copy(update={"interruptible": False})
    running = message("phone", profile=patient, text="what are your hours")
    for kind, text in ((MessageKind.TEXT, "never mind"), (MessageKind.PARTIAL_TRANSCRIPT, "")):
        newer = message("phone", at=later(1), kind=kind, text=text, profile=patient)
        assert not DoubleTextingPolicy.interrupts(running, newer)
        assert not DoubleTextingPolicy.supersedes(running, newer)
