"""Shaping one answer for its channel: the only place channel style is enforced.

One brain answer goes in; the text to deliver comes out, as the channel's profile asks
(`ChannelProfile.text_format` and its budgets). Markdown is kept and capped. Plain text loses
its markup. GSM-7 text is plain and fits a segment budget (see `sms_text`). Speakable text is
plain, TTS-friendly and short enough to listen to. The rules and reasons: docs/shaping.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from services.brain.sms_text import cut_to_fit, fit_to_segments, normalize_gsm7
from shared.contracts import ChannelProfile, TextFormat

MAX_REPLY_CHARS = 4000
"""Longest markdown answer by default; a model that rambles past it is cut at a boundary."""

DEFAULT_SEGMENT_BUDGET = 3
"""GSM-7 answers of a profile without `max_segments`: 459 GSM-7 or 201 UCS-2 characters."""


def shape(profile: ChannelProfile, text: str) -> str:
    """The answer `text` as it should be delivered on a channel with this `profile`."""
    if profile.text_format is TextFormat.GSM7:
        return _shape_sms(text, profile.max_segments or DEFAULT_SEGMENT_BUDGET)
    if profile.text_format is TextFormat.SPEAKABLE:
        return _shape_voice(text, profile.max_chars)
    if profile.text_format is TextFormat.PLAIN:
        return cap_length(strip_markdown(text), profile.max_chars)
    return cap_length(text.strip(), profile.max_chars)


# --- markdown -------------------------------------------------------------------------------

_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")
_CODE_FENCE = re.compile(r"^[ \t]*```[^\n]*\n?", re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*(?:[-*+•]|\d+\.)[ \t]+", re.MULTILINE)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]*", re.MULTILINE)
_QUOTE = re.compile(r"^[ \t]*>[ \t]?", re.MULTILINE)
_EMPHASIS = re.compile(
    r"(\*\*|~~|`)(.+?)\1"  # **strong**, ~~struck~~, `code`
    r"|(?<!\w)(__?)(?=\S)(.+?)(?<=\S)\3(?!\w)"  # _em_ and __strong__, but not snake_case_names
    r"|\*(?=\S)(.+?)(?<=\S)\*"  # *em*
)
_SPACES = re.compile(r"[ \t]+")
# A URL ends before trailing punctuation, so "see example.com." keeps its full stop.
_URL = re.compile(r"((?:https?://|www\.)[^\s<>()\[\]]*[^\s<>()\[\].,;:!?'\"])", re.IGNORECASE)


def strip_markdown(text: str, *, link_targets: bool = True) -> str:
    """Markdown to plain text, keeping line breaks.

    Links become "label (url)" so an SMS reader can still follow them, or just "label" with
    `link_targets=False`. URLs are left intact (an underscore in a URL is not emphasis).
    """
    text = _MARKDOWN_LINK.sub(r"\1 (\2)" if link_targets else r"\1", text)
    for pattern in (_CODE_FENCE, _BULLET, _HEADING, _QUOTE):
        text = pattern.sub("", text)
    text = _outside_urls(text, lambda part: _EMPHASIS.sub(_emphasis_content, part))
    return _SPACES.sub(" ", text).strip()


def _emphasis_content(match: re.Match[str]) -> str:
    return match[2] or match[4] or match[5] or ""


def _outside_urls(text: str, change: Callable[[str], str]) -> str:
    # `_URL` has one group, so split() alternates text, url, text, ...: change only the text.
    parts = _URL.split(text)
    return "".join(part if i % 2 else change(part) for i, part in enumerate(parts))


def cap_length(text: str, limit: int = MAX_REPLY_CHARS) -> str:
    """`text` cut to at most `limit` characters at a sentence or word boundary (then "…")."""
    return cut_to_fit(text, lambda kept: len(kept) <= limit, ellipsis=lambda _: "…")


# --- SMS ------------------------------------------------------------------------------------

_LINE_BREAKS = re.compile(r"\s*\n\s*")
_INLINE_SPACE = re.compile(r"[^\S\n]+")


def _shape_sms(text: str, segment_budget: int) -> str:
    text = normalize_gsm7(strip_markdown(text))
    # Line breaks stay (one septet, like a space, and lists read better), blank lines go.
    text = _INLINE_SPACE.sub(" ", _LINE_BREAKS.sub("\n", text)).strip()
    return fit_to_segments(text, segment_budget)


# --- voice ----------------------------------------------------------------------------------

# Emoji and pictographs: TTS engines skip them, or worse, read their names aloud.
_PICTOGRAPHS = re.compile(
    "["
    "\U0001f000-\U0001faff"  # emoji, pictographs, flags, skin tones
    "\u2300-\u23ff"  # technical symbols with emoji forms (⌚ ⏰)
    "\u2600-\u27bf"  # miscellaneous symbols and dingbats (☀ ✅ ❤)
    "\u2b00-\u2bff"  # arrows and stars (⭐)
    "\ufe0e\ufe0f\u200d\u20e3"  # variation selectors, zero-width joiner, keycap
    "\U000e0020-\U000e007f"  # tag characters (subdivision flags)
    "]"
)
_AMPERSAND = re.compile(r"[ \t]*&[ \t]*")
_PERCENT = re.compile(r"(\d)[ \t]*%")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,!?;:])")
_WHITESPACE = re.compile(r"\s+")
_CLAUSE_END = tuple(".!?:;,")


def _shape_voice(text: str, limit: int) -> str:
    text = _MARKDOWN_LINK.sub(r"\1", text)  # a link is heard by its label, never its address
    text = _URL.sub(_spoken_host, text)
    text = _PICTOGRAPHS.sub("", text)
    text = _AMPERSAND.sub(" and ", text)
    text = _PERCENT.sub(r"\1 percent", text)
    text = _lines_as_sentences(text)
    text = _WHITESPACE.sub(" ", text)
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text).strip()
    return cut_to_fit(text, lambda kept: len(kept) <= limit, ellipsis=lambda _: "...")


def _spoken_host(match: re.Match[str]) -> str:
    """The part of a URL a listener can remember: "https://www.example.com/a?b" → "example.com"."""
    url = match[0]
    if not url.lower().startswith(("http://", "https://")):
        url = "//" + url  # "www.x.org/a" has no scheme; "//" makes urlsplit see a host
    host = urlsplit(url).hostname or match[0]
    return host.removeprefix("www.")


def _lines_as_sentences(text: str) -> str:
    # A list item or a heading is its own sentence, so TTS pauses between items. Any other line
    # that starts in lower case continues a sentence the model wrapped.
    sentences: list[str] = []
    for raw in text.splitlines():
        line = strip_markdown(raw)
        if not line:
            continue
        starts_block = any(p.match(raw) for p in (_BULLET, _HEADING, _QUOTE))
        if sentences and not starts_block and line[0].islower():
            sentences[-1] += " " + line
        else:
            sentences.append(line)
    return " ".join(s if s.endswith(_CLAUSE_END) else s + "." for s in sentences)
