"""Running-summary helpers shared by the engines: trimming, and the offline extractive summary.

The offline summary is one sentence per exchange, oldest first, for example
`On sms the customer said: "my name is Ana"; you answered: "Nice to meet you, Ana!".`
When it grows past the limit, whole sentences are dropped from the front, so the newest
facts survive; `customer_quotes` reads the customer's words back (the offline engine recalls
a name given before the turns were folded away).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from services.brain.engines.base import EngineTurn

QUOTE_MAX_CHARS = 160  # one long answer must not crowd every other fact out of the summary
_PIECE_START = re.compile(r" (?=On \S+ (?:the customer said|you said): \")")
_CUSTOMER_QUOTE = re.compile(r"On (\S+) the customer said: \"([^\"]*)\"")
_SENTENCE_START = re.compile(r"(?<=[.!?] )\S")
_WORD_START = re.compile(r"(?<= )\S")


def keep_newest(text: str, max_chars: int) -> str:
    """`text` with whitespace collapsed, cut from the front to at most `max_chars`.

    The cut prefers a sentence start (when one is in the first half of what remains), else
    a word start marked with an ellipsis.
    """
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    if max_chars <= 1:
        return text[len(text) - max_chars :] if max_chars > 0 else ""
    start = len(text) - max_chars
    if sentence := _SENTENCE_START.search(text, start, start + max_chars // 2):
        return text[sentence.start() :]
    start += 1  # room for the ellipsis
    word = _WORD_START.search(text, start)
    return "\u2026" + text[word.start() if word else start :]


def _quote(text: str) -> str:
    return _clip_end(" ".join(text.replace('"', "'").split()), QUOTE_MAX_CHARS)


def _pieces(turns: Sequence[EngineTurn]) -> Iterator[str]:
    """One sentence per customer turn (with the answer that followed it), oldest first."""
    i = 0
    while i < len(turns):
        turn = turns[i]
        if turn.role == "user":
            piece = f'On {turn.channel} the customer said: "{_quote(turn.text)}"'
            if i + 1 < len(turns) and turns[i + 1].role == "assistant":
                piece += f'; you answered: "{_quote(turns[i + 1].text)}"'
                i += 1
            yield piece + "."
        else:
            yield f'On {turn.channel} you said: "{_quote(turn.text)}".'
        i += 1


def extractive_summary(previous: str, turns: Sequence[EngineTurn], max_chars: int) -> str:
    """Fold `turns` into `previous`, dropping the oldest sentences to fit `max_chars`."""
    pieces = [p for p in _PIECE_START.split(" ".join(previous.split())) if p]
    pieces += _pieces(turns)
    while len(pieces) > 1 and len(" ".join(pieces)) > max_chars:
        pieces.pop(0)
    if len(pieces) == 1 and _PIECE_START.match(" " + pieces[0]):
        # One exchange alone is too long: its start (channel, the customer's words) matters most.
        return _clip_end(pieces[0], max_chars)
    return keep_newest(" ".join(pieces), max_chars)


def _clip_end(text: str, max_chars: int) -> str:
    """`text` cut at the end, on a word boundary, to at most `max_chars` (with an ellipsis)."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 1:
        return text[:max_chars]
    cut = text[: max_chars - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "\u2026"


def customer_quotes(summary: str) -> list[tuple[str, str]]:
    """(channel, words) of each customer turn recorded in an extractive summary, oldest first."""
    return [(m.group(1), m.group(2)) for m in _CUSTOMER_QUOTE.finditer(summary)]
