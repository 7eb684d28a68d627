"""What a caller heard of an answer before barging in (services/brain/heard.py)."""

from __future__ import annotations

import pytest

from services.brain.heard import heard_part

pytestmark = pytest.mark.unit

TEXT = "Our store opens at nine. It closes at six."


def test_an_answer_that_finished_playing_was_heard_whole() -> None:
    assert heard_part(TEXT, started_at=100.0, now=100.0 + len(TEXT) / 10, chars_per_s=10) is None


def test_the_cut_falls_on_a_word_boundary() -> None:
    # 2.2 s at 10 chars/s: 22 characters, "Our store opens at nin" -> the half word is dropped.
    assert heard_part(TEXT, started_at=100.0, now=102.2, chars_per_s=10) == "Our store opens at"


def test_a_cut_right_after_a_word_keeps_it() -> None:
    # 24 characters end exactly after "nine." (the next character is a space).
    assert heard_part(TEXT, started_at=0.0, now=2.4, chars_per_s=10) == "Our store opens at nine."


def test_nothing_heard_yet_is_an_empty_cut() -> None:
    assert heard_part(TEXT, started_at=50.0, now=50.1, chars_per_s=10) == ""
    assert heard_part(TEXT, started_at=50.0, now=49.0, chars_per_s=10) == ""
