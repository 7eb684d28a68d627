"""Twilio's opt-out, opt-in and help keywords (providers.md §2.8).

A keyword counts only when it is the whole message, in any case, ignoring surrounding
whitespace: "stop please" and "Stop." are ordinary messages. That is Twilio's rule, and
matching it exactly keeps our consent state equal to Twilio's own block list.
"""

from __future__ import annotations

from enum import StrEnum


class Keyword(StrEnum):
    """What a keyword message asks for."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
        Keyword.OPT_OUT,
    ),
    **dict.fromkeys(("START", "YES", "UNSTOP"), Keyword.OPT_IN),
    **dict.fromkeys(("HELP", "INFO"), Keyword.HELP),
}


def classify(body: str) -> tuple[Keyword, str] | None:
    """The keyword `body` is (with its canonical spelling), or None for a normal message."""
    word = body.strip().upper()
    keyword = KEYWORDS.get(word)
    return (keyword, word) if keyword else None
