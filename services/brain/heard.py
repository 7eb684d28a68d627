"""What a caller had heard of a spoken answer when they barged in.

VoIPBin reports no per-sentence playback events, so the brain estimates: speech starts when
the answer's first sentence goes out and plays at `chars_per_s` (as egress estimates it for
hanging up after a goodbye). When the caller starts speaking before the estimated end, the
answer in memory is cut to what was heard, at a word boundary (a half-spoken word was not
understood), and marked interrupted: the model then knows what the caller missed.
"""

from __future__ import annotations


def heard_part(text: str, started_at: float, now: float, chars_per_s: float) -> str | None:
    """The part of `text` heard by `now`, or None when all of it was (nothing to amend)."""
    heard_chars = int(max(0.0, now - started_at) * chars_per_s)
    if heard_chars >= len(text):
        return None
    cut = text[:heard_chars]
    if not text[heard_chars].isspace():
        cut = cut.rsplit(" ", 1)[0] if " " in cut else ""
    return cut.rstrip()
