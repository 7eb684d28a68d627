"""The tables `list` and `replay` print: positions, ids and reasons, never payloads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC

from services.tools.dead_letters.letters import Action, ReplayReport, ReplayRow, StoredLetter

ERROR_WIDTH = 60


def format_letters(topic: str, letters: Sequence[StoredLetter]) -> str:
    """A table of letters (no payloads) and a count per reason."""
    if not letters:
        return f"no dead letters on {topic}"
    table = _table(
        ("POSITION", "REASON", "ATTEMPTS", "SOURCE TOPIC", "KEY", "TIME", "ERROR"),
        [_letter_cells(item) for item in letters],
    )
    counts = Counter(item.reason for item in letters)
    per_reason = ", ".join(f"{reason} {count}" for reason, count in counts.most_common())
    return f"{table}\n\n{len(letters)} dead letter(s) on {topic}: {per_reason}"


def _letter_cells(item: StoredLetter) -> list[str]:
    position = f"{item.dlq_partition}:{item.dlq_offset}"
    letter = item.letter
    if letter is None:
        return [position, item.reason, "-", "-", "-", "-", _clip(item.parse_error or "")]
    return [
        position,
        letter.reason,
        str(letter.attempts),
        letter.source_topic,
        letter.key or "-",
        letter.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        _clip(letter.error),
    ]


def format_report(report: ReplayReport) -> str:
    """The selected letters with the action taken, and a summary line."""
    rows = [row for row in report.rows if row.action is not Action.FILTERED]
    verb = "would replay" if report.dry_run else "replayed"
    summary = (
        f"{report.dlq_topic}: {verb} {report.replayed}, "
        f"already replayed {report.skipped_already_replayed}, "
        f"unreadable {report.unreadable}, filtered out {report.skipped_filtered}"
        + (" (dry run: nothing published)" if report.dry_run else "")
    )
    if not report.matched:
        summary += "\nnothing matched the selection"
    if not rows:
        return summary
    table = _table(
        ("POSITION", "REASON", "SOURCE TOPIC", "ACTION"),
        [_report_cells(row) for row in rows],
    )
    return f"{table}\n\n{summary}"


def _report_cells(row: ReplayRow) -> list[str]:
    partition, offset = row.position
    return [f"{partition}:{offset}", row.reason, row.source_topic, row.action.value]


def _clip(text: str, width: int = ERROR_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cells[i]) for cells in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
        for cells in [headers, *rows]
    ]
    return "\n".join(lines)
