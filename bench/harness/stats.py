"""Small statistics helpers (no numpy on purpose: the bench runs in the project's venv)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> str:
    """`p50 / p99 / max` of millisecond values, for detail lines."""
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 50):.2f} / p99 {percentile(values, 99):.2f}"
        f" / max {max(values):.2f} ms (n={len(values)})"
    )


def steady_rate(timestamps_ms: Sequence[float], low_q: float = 10, high_q: float = 90) -> float:
    """Events per second between the `low_q`-th and `high_q`-th event (by count).

    Excludes the ramp-up (group join, first fetches) and the tail (last partitions draining).
    """
    ordered = sorted(timestamps_ms)
    if len(ordered) < 10:
        return math.nan
    first = int(len(ordered) * low_q / 100)
    last = int(len(ordered) * high_q / 100) - 1
    span_s = (ordered[last] - ordered[first]) / 1000
    return (last - first) / span_s if span_s > 0 else math.nan


def peak_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """Largest number of (start, end) intervals open at the same instant."""
    edges = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    edges.sort(key=lambda edge: (edge[0], edge[1]))  # an end before a start at a tie
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak


def occurred_s(event: Mapping[str, Any]) -> float:
    """An ops event's `occurred_at`, as epoch seconds."""
    return datetime.fromisoformat(event["occurred_at"]).timestamp()


def percentile_cells(values: Sequence[float]) -> tuple[str, str, str, str]:
    """p50, p95, p99 and max of `values` for a table row ("n/a" when empty)."""
    if not values:
        return ("n/a", "n/a", "n/a", "n/a")
    return (
        f"{percentile(values, 50):.1f}",
        f"{percentile(values, 95):.1f}",
        f"{percentile(values, 99):.1f}",
        f"{max(values):.1f}",
    )
