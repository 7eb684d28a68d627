"""The one `Retry-After` parser: how long a server asked us to wait.

Reads `retry-after-ms` (OpenAI sends it; more precise, so it wins) and `Retry-After` as
delta-seconds or an HTTP date. Returns None when neither is usable (absent, garbage, not a
finite number, a date without a zone); never negative.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait according to the response's headers, or None (see the module)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if not math.isfinite(seconds):
            continue
        return max(0.0, seconds)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT: one without a zone is not one
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
