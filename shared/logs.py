"""Structured logging: structlog with event names and key/value fields.

Convention: `log.info("ingress.chat.accepted", conversation_id=...)`. Message text and phone
numbers are never logged above debug; secrets never (use `SecretStr`, and `redact` for URLs).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Literal

import structlog

_SECRET_QUERY = re.compile(r"(?i)((?:accesskey|api_key|token|key|secret|password)=)[^&\s]+")


def redact(text: str) -> str:
    """Mask secret-looking query parameters (`?accesskey=...`) in a URL or message."""
    return _SECRET_QUERY.sub(r"\1***", text)


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time of writing, not at configuration.

    Loggers are cached on first use; a stream captured at configuration (a test's capture,
    since closed) would make every later log line raise."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    # Libraries are chatty at INFO (every rebalance, every request line); keep them at WARNING.
    for noisy in (
        "aiokafka",
        "faststream",
        "uvicorn.access",
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "openai",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to a component name."""
    return structlog.get_logger(component=name)  # type: ignore[no-any-return]
