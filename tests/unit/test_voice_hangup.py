"""The hangup marker: stripped from whole answers and from streams however it is split."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from services.brain.hangup import HANGUP_MARKER, MarkerFilter, strip_marker
from services.brain.prompt import system_prompt
from shared.contracts import TextFormat

pytestmark = pytest.mark.unit

ANSWER = "Thanks for calling, goodbye! [hangup]"


def test_only_the_speakable_prompt_tells_the_model_to_end_with_the_marker() -> None:
    assert HANGUP_MARKER in system_prompt(TextFormat.SPEAKABLE)
    for written in (TextFormat.GSM7, TextFormat.MARKDOWN, TextFormat.PLAIN):
        assert HANGUP_MARKER not in system_prompt(written)


@pytest.mark.parametrize(
    ("text", "expected", "found"),
    [
        (ANSWER, "Thanks for calling, goodbye!", True),
        ("Goodbye![hangup]", "Goodbye!", True),  # glued to the last sentence
        ("Goodbye! [HANGUP]", "Goodbye!", True),
        ("Goodbye! [hang up]", "Goodbye!", True),
        ("Goodbye. [ hang-up ]\n", "Goodbye.\n", True),
        ("Bye [hangup] now.", "Bye now.", True),
        ("Your order ships today.", "Your order ships today.", False),
        ("See [the terms] online.", "See [the terms] online.", False),
        ("[hang on] one moment", "[hang on] one moment", False),
    ],
)
def test_strip_marker_removes_it_wherever_it_is(text: str, expected: str, found: bool) -> None:
    assert strip_marker(text) == (expected, found)


async def _deltas(parts: Sequence[str]) -> AsyncIterator[str]:
    for part in parts:
        yield part


async def _filtered(parts: Sequence[str]) -> tuple[list[str], bool]:
    marker = MarkerFilter()
    out = [text async for text in marker.filter(_deltas(parts))]
    return out, marker.found


@pytest.mark.asyncio
@pytest.mark.parametrize("split", range(1, len(ANSWER)))
async def test_a_marker_split_anywhere_across_two_deltas_is_removed(split: int) -> None:
    out, found = await _filtered([ANSWER[:split], ANSWER[split:]])
    assert "".join(out).strip() == "Thanks for calling, goodbye!"
    assert found
    assert not any("[" in part for part in out)


@pytest.mark.asyncio
async def test_a_marker_streamed_a_character_at_a_time_is_removed() -> None:
    out, found = await _filtered(list("Bye![hangup]"))
    assert ("".join(out), found) == ("Bye!", True)


@pytest.mark.asyncio
async def test_only_a_possible_marker_is_held_back() -> None:
    marker = MarkerFilter()
    assert marker.feed("Goodbye. [ha") == "Goodbye. "  # could be the marker: wait
    assert marker.feed("ppy to help]") == "[happy to help]"  # it was not
    assert marker.feed(" See [") == " See "
    assert marker.feed("x] bye") == "[x] bye"
    assert marker.feed(" [hang") == " "
    assert marker.flush() == "[hang"  # the stream ended mid-way: it was just text
    assert not marker.found


@pytest.mark.asyncio
async def test_text_without_a_marker_passes_through_unchanged() -> None:
    parts = ["Your order", " ships", " today.", " Anything else?"]
    out, found = await _filtered(parts)
    assert (out, found) == (parts, False)
