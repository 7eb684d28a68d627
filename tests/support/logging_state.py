"""Putting a test process's logging back as it was after a command reconfigured it in-process.

`cli.main` calls `configure_logging`: a structlog level filter, library loggers held at
WARNING, and a formatter and filter on the root handlers (pytest's, in a test). Left in place,
they hide from every later test the lines it means to capture.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import structlog

from shared.logs import QUIET_LIBRARIES


@contextlib.contextmanager
def logging_config_restored() -> Iterator[None]:
    """Restore structlog's configuration, the quietened loggers' levels and the root
    handlers' formatters and filters on exit."""
    config = structlog.get_config()
    levels = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    handlers = [(h, h.formatter, list(h.filters)) for h in logging.getLogger().handlers]
    try:
        yield
    finally:
        structlog.configure(**config)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for handler, formatter, filters in handlers:
            handler.setFormatter(formatter)
            handler.filters[:] = filters
