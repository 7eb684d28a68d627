"""Outage bookkeeping and log hygiene: an outage is logged once, a summary now and then, and
once when it clears; repeated library lines are folded; tracebacks never carry messages."""

from __future__ import annotations

import logging

import pytest
import structlog
from structlog.testing import capture_logs

from services.common.health import Dependency
from shared.logs import RepeatFilter, ThrottledLog, safe_traceback

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_logged_once_then_summarised_then_cleared() -> None:
    clock = Clock()
    kafka = Dependency("kafka", summary_every_s=10, clock=clock)
    with capture_logs() as logs:
        for _ in range(1_000):  # a thousand failed publishes within one second
            kafka.failed(TimeoutError())
        clock.now += 4
        kafka.failed(TimeoutError())
        clock.now += 7  # 11 s into the outage: one summary
        kafka.failed(TimeoutError())
        assert kafka.failing and kafka.failing_for == pytest.approx(11)
        kafka.succeeded()
        kafka.succeeded()
    events = [entry["event"] for entry in logs]
    assert events == [
        "dependency.unavailable",
        "dependency.still_unavailable",
        "dependency.restored",
    ]
    assert logs[1]["failures_suppressed"] == 1_001
    assert logs[2]["outage_s"] == pytest.approx(11)
    assert not kafka.failing and kafka.failing_for == 0.0 and kafka.last_error == ""


def test_throttled_log_fires_at_most_once_per_window() -> None:
    clock = Clock()
    with capture_logs() as logs:
        throttled = ThrottledLog(structlog.get_logger(), "consume.retry", every_s=10, clock=clock)
        for _second in range(30):
            for _ in range(50):
                throttled.warning(error="ConnectionError")
            clock.now += 1
    assert [entry["suppressed"] for entry in logs] == [0, 499, 499]


def test_repeat_filter_folds_library_reconnect_lines() -> None:
    clock = Clock()
    repeat = RepeatFilter(window_s=10, clock=clock)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, ("n1",), None)

    passed = []
    for _second in range(25):
        for _ in range(100):  # 100 reconnect attempts a second, as seen in the field
            item = record("Unable connect to node with id %s")
            if repeat.filter(item):
                passed.append(item.getMessage())
        other = record("Unable to update metadata from %s")
        if repeat.filter(other):
            passed.append(other.getMessage())
        clock.now += 1
    assert len(passed) == 6  # 3 windows x 2 templates
    assert passed[0] == "Unable connect to node with id n1"
    assert "[999 similar suppressed in 10 s]" in passed[2]


def test_safe_traceback_keeps_frames_and_drops_messages() -> None:
    secret = "call me on +14155550123 about my order"
    try:
        try:
            {}[secret]
        except KeyError as inner:
            raise ValueError(secret) from inner
    except ValueError as exc:
        text = safe_traceback(exc)
    assert secret not in text and "+1415" not in text
    assert "builtins.ValueError (message withheld)" in text
    assert "test_safe_traceback_keeps_frames_and_drops_messages" in text
    assert "caused by KeyError" in text


def test_repeat_filter_on_a_handler_folds_child_loggers_of_the_library_only() -> None:
    clock = Clock()
    repeat = RepeatFilter(window_s=10, clock=clock, prefixes=("aiokafka",))

    def passes(name: str) -> bool:
        return repeat.filter(logging.LogRecord(name, logging.ERROR, __file__, 1, "m", (), None))

    assert [passes("aiokafka.consumer.fetcher") for _ in range(5)] == [True] + [False] * 4
    assert all(passes("switchboard.app") for _ in range(5))


def test_livez_fails_only_past_the_wedge_limit_and_readyz_reports_each_check() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from services.common.http import health_router

    wedged = {"s": 0.0}

    async def kafka() -> bool:
        return wedged["s"] == 0.0

    async def broken() -> bool:
        raise ConnectionError("redis down")

    app = FastAPI()
    app.include_router(
        health_router(
            "svc",
            {"kafka": kafka, "redis": broken},
            wedges={"kafka_publish": lambda: wedged["s"]},
            wedged_after_s=60,
        )
    )
    client = TestClient(app)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"kafka": True, "redis": False}
    assert client.get("/livez").status_code == 200
    wedged["s"] = 59.0
    assert client.get("/livez").status_code == 200
    wedged["s"] = 61.0
    live = client.get("/livez")
    assert live.status_code == 503 and live.json()["wedged_s"] == {"kafka_publish": 61.0}


def test_an_asgi_traceback_through_the_configured_logging_withholds_the_message() -> None:
    """uvicorn logs "Exception in ASGI application" with the traceback; the services run
    uvicorn without its own logging config, so the record goes through ours. In a child
    process: configuring logging here would change it for every later test."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import logging
        from shared.logs import configure_logging
        configure_logging("INFO", "json")
        secret = "my card is 4111 1111 1111 1111, call +14155550123"
        try:
            raise ValueError(f"1 validation error: input_value={secret!r}")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Exception in ASGI application" in done.stderr
    assert "ValueError (message withheld)" in done.stderr
    assert "4111" not in done.stderr and "+1415" not in done.stderr
