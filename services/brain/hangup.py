"""The hangup marker: how the model says "this call is over".

The voice style of the prompt asks the model to end a closing answer with `[hangup]`. The
marker is never spoken nor remembered: `strip_marker` removes it from a whole answer and
`MarkerFilter` from a stream of text deltas, wherever the deltas split it ("… bye. [hang" +
"up]") and however it is glued to the text ("Goodbye![hangup]"). Only a possible beginning
of the marker is held back, until the next delta shows whether it is one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator

HANGUP_MARKER = "[hangup]"

# Tolerates the spellings models drift into: "[HANGUP]", "[hang up]", "[ hang-up ]".
_MARKER = re.compile(r"[ \t]*\[\s*hang[\s_-]?up\s*\]", re.IGNORECASE)
_LOOSE = re.compile(r"[\s_-]")


def strip_marker(text: str) -> tuple[str, bool]:
    """`text` without any hangup marker, and whether there was one."""
    cleaned, count = _MARKER.subn("", text)
    return cleaned, count > 0


def _could_begin_marker(tail: str) -> bool:
    return HANGUP_MARKER.startswith(_LOOSE.sub("", tail.lower()))


class MarkerFilter:
    """Removes hangup markers from a delta stream; `found` tells whether there was one."""

    def __init__(self) -> None:
        self.found = False
        self._held = ""

    def feed(self, delta: str) -> str:
        """The text of `delta` (and of earlier held text) that is safe to pass on."""
        text, found = strip_marker(self._held + delta)
        self.found |= found
        start = text.rfind("[")
        if start != -1 and _could_begin_marker(text[start:]):
            text, self._held = text[:start], text[start:]
        else:
            self._held = ""
        return text

    def flush(self) -> str:
        """What is still held when the stream ends (an unfinished "[hang" is just text)."""
        held, self._held = self._held, ""
        return held

    async def filter(self, deltas: AsyncIterator[str]) -> AsyncGenerator[str, None]:
        """`deltas` with the marker removed."""
        async for delta in deltas:
            if text := self.feed(delta):
                yield text
        if rest := self.flush():
            yield rest
