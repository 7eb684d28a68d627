"""What every `bench/*.py` does around its own run: quiet logs, run on uvloop, print the report."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from shared.logs import configure_logging


def quiet_logs() -> None:
    """Only warnings from the in-process clients; retries after topic creation stay silent."""
    configure_logging("WARNING", "console")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def run_and_print(
    args: argparse.Namespace, run: Callable[[argparse.Namespace], Coroutine[Any, Any, str]]
) -> int:
    """Run one benchmark with `args` and print its report; the process exit code."""
    quiet_logs()
    report: str = uvloop.run(run(args))
    print()
    print(report)
    return 0


def bench_parser(
    doc: str | None, *, quick: bool = True, only: tuple[str, str] | None = None
) -> argparse.ArgumentParser:
    """The options every benchmark shares: `--quick` (unless `quick=False`), `--keep-infra`,
    and `--only` with `only` = (default, help) for one made of parts."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    if quick:
        parser.add_argument("--quick", action="store_true", help="shorter smoke run")
    if only is not None:
        parser.add_argument("--only", default=only[0], help=only[1])
    parser.add_argument(
        "--keep-infra",
        action="store_true",
        help="leave Kafka/Redis running if this run started them",
    )
    return parser


def stack_bench_args(doc: str | None, argv: list[str] | None) -> argparse.Namespace:
    """The options of a benchmark that runs the services as processes (voice, VAPI)."""
    return bench_parser(doc).parse_args(argv)
