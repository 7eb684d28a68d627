"""Shaping one answer for its channel: the only place channel style is enforced.

Chat keeps markdown. SMS and voice get plain text. (Segment budgets, speakability rules and
GSM-7 normalization grow here with the SMS and voice channels.)
"""

from __future__ import annotations

import re

from shared.contracts import Channel

_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(.+?)\1")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+", re.MULTILINE)
_HEADING = re.compile(r"^\s*#{1,6}\s*", re.MULTILINE)
_SPACES = re.compile(r"[ \t]+")


def strip_markdown(text: str) -> str:
    """Markdown to plain text, keeping link targets for SMS readers."""
    text = _MARKDOWN_LINK.sub(r"\1 (\2)", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _BULLET.sub("", text)
    text = _HEADING.sub("", text)
    return _SPACES.sub(" ", text).strip()


MAX_REPLY_CHARS = 4000
"""Longest answer on any channel; a model that rambles past it is cut at a word boundary."""


def cap_length(text: str, limit: int = MAX_REPLY_CHARS) -> str:
    """`text` cut to at most `limit` characters, at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    boundary = cut.rfind(" ")
    return (cut[:boundary] if boundary > limit // 2 else cut).rstrip() + "…"


def shape(channel: Channel, text: str) -> str:
    """The answer as it should be delivered on `channel`."""
    text = text.strip()
    if channel is not Channel.CHAT:
        text = strip_markdown(text)
    return cap_length(text)
