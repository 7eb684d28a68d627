"""The call simulator's pure parts: what the caller is shown, and when an answer is over."""

from __future__ import annotations

import pytest

from services.channels.voipbin import actions as voipbin_actions
from services.channels.voipbin.tools.sim_support import (
    KEYS,
    action_line,
    action_lines,
    call_variables,
    fake_root,
    playback_s,
    speech_lines,
    substitute,
    turn_state,
    wait_s,
)

pytestmark = pytest.mark.unit


def test_a_fetch_answer_shows_the_agents_words_and_its_hangup() -> None:
    answer = [
        voipbin_actions.talk("Hi, how can I help?", "en-US"),
        voipbin_actions.digits_receive(5000),
        voipbin_actions.talk("Bye now.", "en-US"),
        voipbin_actions.hangup(),
    ]
    assert action_lines(answer) == [
        "agent: Hi, how can I help?",
        "agent: Bye now.",
        "[agent hangs up]",
    ]


def test_actions_that_say_nothing_show_nothing() -> None:
    assert action_line(voipbin_actions.answer()) is None
    assert action_line(voipbin_actions.fetch("https://x.example/f", "POST")) is None
    assert action_line(voipbin_actions.talk("   ", "en-US")) is None
    assert action_line({"type": "talk"}) is None
    assert action_line({"type": "talk", "option": "not an object"}) is None
    assert action_line("talk") is None


def test_the_speech_log_shows_say_and_talk_in_order() -> None:
    entries = [
        {"op": "say", "call_id": "c", "speaking_id": "s", "text": "Sure."},
        {"op": "flush", "call_id": "c", "speaking_id": "s"},
        {"op": "talk", "call_id": "c", "speaking_id": None, "text": " Anything else? "},
        {"op": "stop", "call_id": "c", "speaking_id": "s"},
        {"op": "say", "call_id": "c", "speaking_id": "s", "text": ""},
    ]
    assert speech_lines(entries) == ["agent: Sure.", "agent: Anything else?"]


def test_waiting_actions_hold_the_flow_for_their_duration() -> None:
    assert wait_s(voipbin_actions.digits_receive(2500)) == 2.5
    assert wait_s({"type": "sleep", "option": {"duration": 100}}) == 0.1
    assert wait_s({"type": "sleep"}) == 0.0
    assert wait_s({"type": "sleep", "option": {"duration": "soon"}}) == 0.0
    assert wait_s({"type": "sleep", "option": {"duration": -5}}) == 0.0


@pytest.mark.parametrize(
    ("now", "heard", "expected"),
    [
        (10.5, None, "waiting"),  # nothing yet, still within the timeout
        (31.0, None, "timed_out"),  # nothing at all within 20 s
        (12.0, 11.0, "waiting"),  # the agent is still talking (silence < 1.5 s)
        (12.6, 11.0, "answered"),  # then quiet for 1.5 s
        (30.5, 30.0, "answered"),  # still talking at the timeout: what came is the answer
        (12.0, 9.0, "waiting"),  # speech from before the turn does not count
        (31.0, 9.0, "timed_out"),
    ],
)
def test_an_answer_is_over_after_a_quiet_moment_or_the_timeout(
    now: float, heard: float | None, expected: str
) -> None:
    state = turn_state(now, started_at=10.0, last_heard_at=heard, quiet_s=1.5, timeout_s=20.0)
    assert state == expected


def test_the_fake_controls_sit_at_the_api_base_without_the_version() -> None:
    assert fake_root("http://127.0.0.1:8020/v1.0") == "http://127.0.0.1:8020"
    assert fake_root("http://127.0.0.1:8020/v1.0/") == "http://127.0.0.1:8020"
    assert fake_root("http://fake:8020") == "http://fake:8020"


CALL = {
    "id": "c-1",
    "activeflow_id": "af-1",
    "flow_id": "f-1",
    "direction": "incoming",
    "source": {"type": "tel", "target": "+15551234567", "target_name": "Ann"},
    "destination": {"type": "sip", "target": "direct.0123456789ab@sip.voipbin.net"},
}


def test_options_go_through_voipbins_variable_substitution() -> None:
    variables = call_variables(CALL, digits="42")
    option = {
        "event_url": "https://sb.example/f/t?n=2&digits=${voipbin.call.digits}",
        "event_method": "POST",
        "nested": [{"text": "Hi ${voipbin.call.source.name}, ${unknown.thing}!"}],
        "duration": 5000,
    }
    assert substitute(option, variables) == {
        "event_url": "https://sb.example/f/t?n=2&digits=42",
        "event_method": "POST",
        "nested": [{"text": "Hi Ann, !"}],
        "duration": 5000,
    }


def test_the_call_variables_describe_the_call_and_its_activeflow() -> None:
    variables = call_variables(CALL)
    assert variables["voipbin.call.id"] == variables["voipbin.activeflow.reference_id"] == "c-1"
    assert variables["voipbin.activeflow.id"] == "af-1"
    assert variables["voipbin.call.source.target"] == "+15551234567"
    assert variables["voipbin.call.digits"] == "", "no keys pressed: empty, not the ${...} text"


@pytest.mark.parametrize(("keys", "ok"), [("1", True), ("12*#", True), ("", False), ("1a", False)])
def test_keys_are_what_a_keypad_has(keys: str, ok: bool) -> None:
    assert bool(KEYS.match(keys)) is ok


def test_only_the_agents_words_take_time_to_hear() -> None:
    assert playback_s("agent: " + "x" * 30) == 2.0
    assert playback_s("[agent hung up]") == 0.0
    assert playback_s("you> hello there") == 0.0
