"""Structured logging: structlog with event names and key/value fields.

Convention: `log.info("ingress.chat.accepted", conversation_id=...)`. Message text and phone
numbers are never logged above debug; secrets never (use `SecretStr`, and `redact` for URLs).
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Literal

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


def safe_traceback(exc: BaseException) -> str:
    """An exception as its type and frames (file, line, function) only.

    Exception messages are left out on purpose: a pydantic error quotes its input, a
    `KeyError` its key, an HTTP error its URL; any of them can hold a customer's text, a phone
    number or a token. Chained causes are listed by type."""
    lines = [f"{type(exc).__module__}.{type(exc).__qualname__} (message withheld)"]
    for frame in traceback.extract_tb(exc.__traceback__):
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
    cause = exc.__cause__ or exc.__context__
    depth = 0
    while cause is not None and depth < 5:
        lines.append(f"  caused by {type(cause).__qualname__}")
        cause = cause.__cause__ or cause.__context__
        depth += 1
    return "\n".join(lines)


def _safe_exc_info(
    _logger: Any, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog processor: render `exc_info` with `safe_traceback`, never the message."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc_info, tuple):
            exc = exc_info[1]
        if exc is not None:
            event_dict["exception"] = safe_traceback(exc)
    return event_dict


class _SafeFormatter(logging.Formatter):
    """stdlib formatter for library records (uvicorn's "Exception in ASGI application")."""

    def formatException(self, ei: Any) -> str:
        exc = ei[1] if isinstance(ei, tuple) else None
        return safe_traceback(exc) if exc is not None else ""


CACHE_LOGGERS = True
"""Whether structlog fixes each logger's configuration on its first use (it is faster).
A test process turns it off (tests/conftest.py): a command run in-process there configures
logging, and a logger cached after that would escape `structlog.testing.capture_logs` in
every later test of the session."""


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
        processors=[*shared, _safe_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_SafeFormatter("%(levelname)s %(name)s %(message)s"))
    # Libraries are chatty at INFO (every rebalance, every request line); keep them at WARNING.
    # While Kafka is down aiokafka logs every reconnect, fetch and heartbeat attempt at ERROR:
    # once per window is enough to see the outage (the services log its start and end).
    # On the handlers: a logger's own filters never see its children's records.
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(prefixes=("aiokafka", "faststream")))
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)


QUIET_LIBRARIES = (
    "aiokafka",
    "faststream",
    "uvicorn.access",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "openai",
)
"""Loggers `configure_logging` keeps at WARNING."""


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to a component name."""
    return structlog.get_logger(component=name)  # type: ignore[no-any-return]


class RepeatFilter(logging.Filter):
    """Lets the first record of each message template through, then at most one per
    `window_s`, annotated with how many were suppressed in between.

    Only records of loggers under `prefixes` are folded (all, when empty); others pass.
    """

    def __init__(
        self,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        prefixes: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self._prefixes and not record.name.startswith(self._prefixes):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} [{last[1]} similar suppressed in {self._window_s:.0f} s]"
        if len(self._seen) > 1_000:  # templates are few; this only bounds a pathological case
            self._seen.clear()
        self._seen[key] = (now, 0)
        return True


class ThrottledLog:
    """One log event that may fire in a loop (a retry per message while Redis is down):
    the first call logs, later ones at most once per `every_s` with the count in between."""

    def __init__(
        self,
        logger: structlog.stdlib.BoundLogger,
        event: str,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._event = event
        self._every_s = every_s
        self._clock = clock
        self._last = float("-inf")
        self._suppressed = 0

    def warning(self, **fields: Any) -> None:
        """Log a warning now, or count it for the next one."""
        now = self._clock()
        if now - self._last < self._every_s:
            self._suppressed += 1
            return
        self._logger.warning(self._event, suppressed=self._suppressed, **fields)
        self._last = now
        self._suppressed = 0
