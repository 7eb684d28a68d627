"""Shared pieces of the SMS benchmarks (`bench/sms_bench.py`): numbers, tables, env.

`bench.harness.report.render_table` has fixed target/measured/verdict columns; the SMS
benchmarks report a grid per sub-benchmark instead, rendered by `render_grid` in the same
markdown style.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.harness.infra import PARTITIONS, Infra


def phone_number(index: int) -> str:
    """A distinct, possible US number in E.164 for every `index` below 4,450,000."""
    return f"+1415{5_550_000 + index:07d}"


def service_env(infra: Infra, namespace: str) -> dict[str, str]:
    """Environment of one `switchboard` service process in a fresh namespace."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "REDIS_URL": infra.redis_url,
        "SWITCHBOARD_TOPIC_NAMESPACE": namespace,
        "SWITCHBOARD_REDIS_PREFIX": namespace,
        "SWITCHBOARD_TOPIC_PARTITIONS": str(PARTITIONS),
        "LOG_LEVEL": "WARNING",
    }


def render_grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table (also readable as plain text); numbers are right-aligned."""
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]

    def cell(value: str, width: int) -> str:
        numeric = value[:1].isdigit() or value[:1] in "-+"
        return value.rjust(width) if numeric else value.ljust(width)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell(c, w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
