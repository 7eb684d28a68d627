"""The sizing benchmark's tables: Redis by depth and by key kind, brain RSS, workers."""

from __future__ import annotations

from bench.harness.sizing_memory import MemoryResult, Stage
from bench.harness.sizing_scale import ScaleConfig, ScaleRun
from bench.harness.sms_common import render_grid

KIB, MIB = 1024, 1024 * 1024
HISTORY_KINDS = ("memory:turns", "memory:overflow", "memory:summary")
_KIND_ORDER = (
    "processed",
    "memory:turns",
    "memory:overflow",
    "memory:summary",
    "lock:fence",
    "lock:wake",
    "lock",
)


def _per_conv(value: float, result: MemoryResult) -> float:
    return value / result.config.conversations


def _ttl(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 0:
        return "none"
    if seconds >= 86_400:
        return f"{seconds / 86_400:.0f} d"
    return f"{seconds:.0f} s"


def depth_table(result: MemoryResult) -> str:
    """Redis bytes per conversation and per 1,000 conversations, at each depth.

    used_memory also grows with things that are not conversations (the worker's connections
    and their buffers, the Lua scripts, the key table's resizes), so the dataset part and the
    client buffers are shown beside it; MEMORY USAGE counts the keys alone.
    """
    rows = []
    for stage in result.stages:
        c = stage.census
        rows.append(
            [
                str(stage.depth),
                f"{stage.replies}/{stage.published}" + ("" if stage.finished else " (timeout)"),
                f"{_per_conv(c.keys, result):.1f}",
                f"{c.delta() / MIB:.1f}",
                f"{c.delta('used_memory_dataset') / MIB:.1f}",
                f"{c.delta('mem_clients_normal') / MIB:.1f} ({c.info['connected_clients']})",
                f"{_per_conv(c.key_bytes, result) / KIB:.1f}",
                f"{_per_conv(c.key_bytes, result) * 1000 / MIB:.1f}",
                f"{_per_conv(c.kind_bytes(*HISTORY_KINDS), result) / KIB:.1f}",
                f"{_per_conv(c.kind_bytes('processed'), result) / KIB:.1f}",
            ]
        )
    header = (
        "turns per conv",
        "replies/turns",
        "keys per conv",
        "used_memory Δ (MiB)",
        "dataset Δ (MiB)",
        "client buffers Δ (MiB) (clients)",
        "keys per conv (KiB)",
        "keys per 1,000 convs (MiB)",
        "of which history (KiB/conv)",
        "of which processed (KiB/conv)",
    )
    return render_grid(header, rows)


def kind_table(result: MemoryResult) -> str:
    """Bytes per conversation of each key kind at each depth, with its TTL and key size."""
    stages = result.stages
    kinds = sorted(
        {kind for s in stages for kind in s.census.kinds},
        key=lambda k: (_KIND_ORDER.index(k) if k in _KIND_ORDER else 99, k),
    )
    last = stages[-1].census
    rows = []
    for kind in kinds:
        cells = [
            kind,
            _ttl(
                next((s.census.kinds[kind].ttl_s for s in stages if kind in s.census.kinds), None)
            ),
        ]
        for stage in stages:
            stats = stage.census.kinds.get(kind)
            cells.append(f"{_per_conv(stats.bytes, result):.0f}" if stats else "0")
        stats = last.kinds.get(kind)
        if stats and stats.keys:
            cells += [
                f"{_per_conv(stats.keys, result):.1f}",
                f"{stats.bytes / stats.keys:.0f}",
                f"{stats.bytes / max(1, last.key_bytes) * 100:.0f} %",
            ]
        else:
            cells += ["0", "n/a", "0 %"]
        rows.append(cells)
    depth_cols = [f"bytes/conv @{s.depth}" for s in stages]
    deepest = stages[-1].depth
    header = (
        "key kind",
        "TTL left",
        *depth_cols,
        f"keys/conv @{deepest}",
        f"bytes/key @{deepest}",
        f"share @{deepest}",
    )
    return render_grid(header, rows)


def _avg_length(stage: Stage, kind: str, result: MemoryResult) -> float:
    stats = stage.census.kinds.get(kind)
    return _per_conv(stats.lengths, result) if stats else 0.0


def history_table(result: MemoryResult) -> str:
    """The history cap: list lengths and summary size per conversation, and chat vs SMS."""
    rows = []
    for stage in result.stages:
        per_conv = stage.census.per_conversation
        sms = [b for conv, b in per_conv.items() if conv in result.sms_conversations]
        chat = [b for conv, b in per_conv.items() if conv not in result.sms_conversations]
        rows.append(
            [
                str(stage.depth),
                f"{_avg_length(stage, 'memory:turns', result):.1f}",
                f"{_avg_length(stage, 'memory:overflow', result):.1f}",
                f"{_avg_length(stage, 'memory:summary', result):.0f}",
                f"{_per_conv(stage.census.kind_bytes(*HISTORY_KINDS), result) / KIB:.1f}",
                f"{sum(chat) / max(1, len(chat)) / KIB:.1f}",
                f"{sum(sms) / max(1, len(sms)) / KIB:.1f}",
            ]
        )
    header = (
        "turns per conv",
        "turns list (entries)",
        "overflow list (entries)",
        "summary (chars)",
        "history keys (KiB/conv)",
        "chat conv, all keys (KiB)",
        "SMS conv, all keys (KiB)",
    )
    return render_grid(header, rows)


def rss_table(result: MemoryResult) -> str:
    """The brain worker's RSS idle and after each depth."""
    idle = result.idle_rss.get("VmRSS", 0)
    rows = [["idle, after start (no conversation yet)", f"{idle / MIB:.1f}", "", ""]]
    for stage in result.stages:
        rss = stage.rss.get("VmRSS", 0)
        rows.append(
            [
                f"after {result.config.conversations} convs x {stage.depth} turns",
                f"{rss / MIB:.1f}",
                f"{stage.rss.get('VmHWM', 0) / MIB:.1f}",
                f"{(rss - idle) / MIB:+.1f}",
            ]
        )
    header = ("brain worker", "VmRSS (MiB)", "VmHWM peak (MiB)", "Δ from idle (MiB)")
    return render_grid(header, rows)


def scale_table(runs: list[ScaleRun], config: ScaleConfig) -> str:
    """Turns/s by partitions and workers, as ratios to one worker on the same partitions."""
    rows = []
    for run in runs:
        one = next((r.rate for r in runs if r.partitions == run.partitions and r.workers == 1), 0)
        rows.append(
            [
                str(run.partitions),
                str(run.workers),
                "+".join(str(n) for n in run.held),
                f"{run.rate:.0f}" + ("" if run.finished else " (timeout)"),
                f"{run.rate / one:.2f}x" if one else "n/a",
                f"{min(run.workers, run.partitions)}x",
            ]
        )
    header = (
        "partitions",
        "brain workers",
        "partitions held",
        "turns/s (steady)",
        "vs 1 worker",
        "expected: min(workers, partitions)",
    )
    return render_grid(header, rows)
