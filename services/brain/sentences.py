"""Cut a stream of model text deltas into sentences, for speaking them one at a time."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) and whitespace.
# "e.g. " or "3.5" do not end one: the first needs a following capital, the second a space.
_SENTENCE_END = re.compile(r"([.!?][\"')\]]*)\s+(?=[A-Z0-9\"'(])")


async def sentences(deltas: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """Yield complete sentences as soon as they are complete; the rest at the end."""
    buffer = ""
    async for delta in deltas:
        buffer += delta
        while True:
            match = _SENTENCE_END.search(buffer)
            if match is None:
                break
            sentence, buffer = buffer[: match.end(1)], buffer[match.end() :]
            if sentence.strip():
                yield sentence.strip()
    if buffer.strip():
        yield buffer.strip()
