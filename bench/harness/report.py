"""Result rows and the printed table."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One line of the results table: a target, the measured value, pass or miss."""

    key: str
    what: str
    target: str
    measured: str
    passed: bool | None
    """None: informational row, no target of its own."""

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"


@dataclass
class Section:
    """What one sub-benchmark reports: table rows plus detail lines (evidence)."""

    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def note(self, line: str) -> None:
        self.details.append(line)


def render_table(rows: list[Row]) -> str:
    """A markdown table, also readable as plain text."""
    header = ("#", "benchmark", "target", "measured", "result")
    body = [(r.key, r.what, r.target, r.measured, r.verdict) for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(cells) for cells in body)])


def render_details(sections: list[Section]) -> str:
    """The evidence under the table, one block per sub-benchmark."""
    blocks = []
    for section in sections:
        lines = [f"{section.title}:"] + [f"  - {detail}" for detail in section.details]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
