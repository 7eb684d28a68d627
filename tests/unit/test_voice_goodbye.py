"""The goodbye matcher that ends a call after the caller takes their leave."""

from __future__ import annotations

import pytest

from services.brain.goodbye import is_goodbye

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "bye",
        "Bye.",
        "goodbye",
        "Good bye!",
        "bye bye",
        "Bye-bye",
        "ok thanks, bye",
        "OK, thanks. Bye!",
        "that's all, thank you, goodbye",
        "That\u2019s all, thank you. Goodbye.",
        "thanks bye",
        "no that's it, bye",
        "thanks for your help, bye for now",
        "alright, see you",
        "great, take care",
        "thank you, you too, goodbye",
        "good night",
    ],
)
def test_a_whole_farewell_is_a_goodbye(text: str) -> None:
    assert is_goodbye(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I want to say goodbye to my old plan",
        "bye the way",
        "goodbye?",
        "wait, don't hang up, bye",
        "can I say bye to the technician",
        "thank you",
        "ok thanks",
        "no",
        "hold on, bye",
        "bye, and what about my bill",
        "see you tomorrow at the shop",
        "nearby",
        "ok thanks bye " * 5,  # a long ramble is a real sentence, not a sign-off
    ],
)
def test_anything_more_than_a_farewell_is_not(text: str) -> None:
    assert not is_goodbye(text)
