"""The sentence splitter: model text deltas in, whole sentences out as early as possible."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.brain.sentences import sentences

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]


async def deltas(*parts: str) -> AsyncIterator[str]:
    for part in parts:
        yield part


async def split(*parts: str) -> list[str]:
    return [sentence async for sentence in sentences(deltas(*parts))]


async def test_splits_on_terminal_punctuation_before_a_capital_or_digit() -> None:
    text = "Hello there. How are you? I am fine! 42 is the answer."
    assert await split(text) == [
        "Hello there.",
        "How are you?",
        "I am fine!",
        "42 is the answer.",
    ]


async def test_any_whitespace_separates_sentences() -> None:
    assert await split("One.\nTwo.\t Three.") == ["One.", "Two.", "Three."]


async def test_lowercase_after_a_period_does_not_end_a_sentence() -> None:
    assert await split("Bring ID, e.g. a passport, and arrive at 5 p.m. sharp.") == [
        "Bring ID, e.g. a passport, and arrive at 5 p.m. sharp."
    ]


async def test_decimals_are_not_split() -> None:
    assert await split("It costs 3.5 dollars. Version 2.0 is out.") == [
        "It costs 3.5 dollars.",
        "Version 2.0 is out.",
    ]


async def test_decimal_cut_across_deltas_is_not_split() -> None:
    assert await split("It costs 3", ".", "5 dollars", ". Thanks.") == [
        "It costs 3.5 dollars.",
        "Thanks.",
    ]


async def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert await split('He said "Stop." Then he left.') == ['He said "Stop."', "Then he left."]
    assert await split("It's 'fine.' Really?") == ["It's 'fine.'", "Really?"]
    assert await split("(See below.) Next [one.] Done.") == ["(See below.)", "Next [one.]", "Done."]


async def test_a_sentence_may_start_with_a_quote_or_bracket() -> None:
    assert await split('Fine. "Really?" she asked. (Yes.)') == [
        "Fine.",
        '"Really?" she asked.',
        "(Yes.)",
    ]


async def test_ellipsis_ends_at_its_last_dot() -> None:
    assert await split("Wait... What?") == ["Wait...", "What?"]


async def test_sentences_reassemble_from_small_deltas() -> None:
    parts = ["Hel", "lo the", "re", ". ", "H", "ow are", " you?", " ", "Bye."]
    assert await split(*parts) == ["Hello there.", "How are you?", "Bye."]


async def test_the_remainder_is_yielded_at_the_end_stripped() -> None:
    assert await split("No terminal punctuation") == ["No terminal punctuation"]
    assert await split("Done. and then some  ") == ["Done. and then some"]
    assert await split("  Hi.  ") == ["Hi."]
    assert await split("First. Second without end") == ["First.", "Second without end"]


async def test_empty_or_blank_input_yields_nothing() -> None:
    assert await split() == []
    assert await split("") == []
    assert await split("", "  ", "\n") == []


async def test_a_sentence_is_emitted_as_soon_as_the_next_one_starts() -> None:
    """Voice speaks the first sentence while the model is still writing the rest."""
    feed: asyncio.Queue[str | None] = asyncio.Queue()
    pulled: list[str] = []
    ended = False

    async def controlled() -> AsyncIterator[str]:
        nonlocal ended
        while (delta := await feed.get()) is not None:
            pulled.append(delta)
            yield delta
        ended = True

    stream = sentences(controlled())
    feed.put_nowait("The first sentence. ")
    nxt = asyncio.ensure_future(stream.__anext__())
    # "The first sentence. " alone is not yet known to end: the next char decides.
    while not pulled:
        await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not nxt.done()

    feed.put_nowait("The")
    first = await asyncio.wait_for(nxt, 1.0)
    assert first == "The first sentence."
    assert not ended
    assert feed.empty() and pulled == ["The first sentence. ", "The"]

    feed.put_nowait(" second one")
    feed.put_nowait(None)
    rest = [sentence async for sentence in stream]
    assert rest == ["The second one"]
    assert ended
