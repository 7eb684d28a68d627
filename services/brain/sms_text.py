"""SMS text: GSM-7 normalization, segment counting and cutting an answer to a segment budget.

An SMS is billed and delivered per segment. A text made only of GSM 03.38 characters is sent
as 7-bit septets (160 per single message); one character outside that alphabet switches the
whole message to UCS-2 (70 per single message). So we replace typographic characters that have
a plain GSM-7 twin before counting, and cut at a sentence or word boundary to stay in budget.
See docs/shaping.md for the table of sizes.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 basic alphabet, in table order. 0x1B (ESC) is left out: it is the escape into the
# extension table, not a character a text can contain.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each is sent as ESC + char, so it costs two septets.
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# Characters with a GSM-7 twin. Anything not listed (emoji, CJK, most accented letters) is kept
# as is: replacing it would change the words, and keeping it correctly forces UCS-2.
_GSM7_EQUIVALENTS = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u0060\u00b4", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\u2022\u2023\u25e6\u2043\u00b7", "-"),
        "\u2026": "...",
        # Non-breaking, fixed-width and ideographic spaces, and tab, read as a plain space.
        **dict.fromkeys("\t\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006", " "),
        **dict.fromkeys("\u2007\u2008\u2009\u200a\u202f\u205f\u3000", " "),
        # Invisible characters a model or a copy-paste leaves behind. The zero-width joiner
        # (U+200D) is not here: it holds emoji sequences together.
        **dict.fromkeys("\u200b\u2060\ufeff\u00ad", ""),
        "\u00d7": "x",
        "\u2264": "<=",
        "\u2265": ">=",
        "\u2192": "->",
        "\u2190": "<-",
        "\u00a9": "(c)",
        "\u00ae": "(R)",
        "\u2122": "TM",
    }
)

_GSM7_SINGLE, _GSM7_MULTI = 160, 153  # septets; a concatenation header takes 7 septets
_UCS2_SINGLE, _UCS2_MULTI = 70, 67  # UTF-16 code units; the header takes 3 of them


@dataclass(frozen=True)
class SegmentInfo:
    """How a text would travel as SMS.

    `units` is septets for GSM-7 (an extension character counts 2) and UTF-16 code units for
    UCS-2 (a character outside the BMP, such as most emoji, counts 2).
    """

    encoding: Encoding
    units: int
    segments: int


def normalize_gsm7(text: str) -> str:
    """`text` with typographic characters replaced by their GSM-7 twins.

    Curly quotes become ' and ", dashes and minus become -, the ellipsis character becomes
    "...", odd spaces become a space, bullets become -.

    Characters without a twin are kept, so a text with emoji or CJK stays UCS-2.
    """
    return text.translate(_GSM7_EQUIVALENTS)


def is_gsm7(text: str) -> bool:
    """True if every character is in the GSM 03.38 basic alphabet or its extension table."""
    return all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text)


def count_segments(text: str) -> SegmentInfo:
    """Encoding, size and number of SMS segments `text` needs.

    Empty text is 0 segments: there is nothing to send, and the shaper never sends an empty SMS.
    A character that needs two units (GSM-7 escape pair, UTF-16 surrogate pair) is never split
    across segments, so a long text can need one segment more than `units / 153` suggests.
    """
    if is_gsm7(text):
        costs = [2 if ch in _GSM7_EXTENSION else 1 for ch in text]
        return _pack("GSM-7", costs, _GSM7_SINGLE, _GSM7_MULTI)
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return _pack("UCS-2", costs, _UCS2_SINGLE, _UCS2_MULTI)


def _pack(encoding: Encoding, costs: list[int], single: int, multi: int) -> SegmentInfo:
    units = sum(costs)
    if units <= single:
        return SegmentInfo(encoding, units, 1 if units else 0)
    segments, free = 1, multi
    for cost in costs:
        if cost > free:  # the pair does not fit in what is left: it opens the next segment
            segments, free = segments + 1, multi
        free -= cost
    return SegmentInfo(encoding, units, segments)


def fit_to_segments(text: str, budget: int) -> str:
    """`text` unchanged if it fits in `budget` segments, else cut to fit.

    The cut is at the last sentence boundary that fits, else at the last word boundary with
    "..." appended ("…" if the kept text is UCS-2 anyway: there it costs one unit, not three).
    See `cut_to_fit` for how the two are weighed.
    """
    if budget < 1:
        raise ValueError("an SMS budget is at least one segment")
    if count_segments(text).segments <= budget:
        return text

    def fits(candidate: str) -> bool:
        return count_segments(candidate).segments <= budget

    return cut_to_fit(text, fits, ellipsis=lambda kept: "..." if is_gsm7(kept) else "…")


# A sentence ends with . ! or ? (maybe closed by a quote or bracket) before a space, or at a
# line end. "e.g. " is a false positive we accept: the cut is still between words.
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)|[^\s](?=[ \t]*\n)")
_WORD_END = re.compile(r"\S(?=\s)")
_TRAILING_JOINERS = " \t\n,;:-"


def cut_to_fit(text: str, fits: Callable[[str], bool], ellipsis: Callable[[str], str]) -> str:
    """The longest clean prefix of `text` for which `fits` holds (shared by SMS and voice).

    Prefers ending at a sentence; falls back to a word boundary with `ellipsis(kept)` appended
    when the last fitting sentence would keep less than half of what the word cut keeps (a
    short first sentence should not throw away a long answer). Only if not even the first word
    fits is a word split, so the reader still gets something.
    """
    if fits(text):
        return text
    by_sentence = _longest_fitting(
        [m.end() for m in _SENTENCE_END.finditer(text)], lambda end: text[:end], fits
    )

    def word_cut(end: int) -> str:
        kept = text[:end].rstrip(_TRAILING_JOINERS)
        return kept + ellipsis(kept)

    by_word = _longest_fitting([m.end() for m in _WORD_END.finditer(text)], word_cut, fits)
    if by_word is None:
        by_word = _longest_fitting(list(range(1, len(text))), word_cut, fits) or ""
    if by_sentence is not None and 2 * len(by_sentence) >= len(by_word):
        return by_sentence
    return by_word


def _longest_fitting(
    ends: list[int], prefix: Callable[[int], str], fits: Callable[[str], bool]
) -> str | None:
    # `fits` is monotonic (a longer prefix never needs fewer segments or characters), so a
    # binary search finds the last fitting end in O(log n) checks instead of one per word.
    first_too_long = bisect.bisect_left(ends, True, key=lambda end: not fits(prefix(end)))
    return prefix(ends[first_too_long - 1]) if first_too_long else None
