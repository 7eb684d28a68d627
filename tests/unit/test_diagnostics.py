"""The task dump: every task by name with the frames it waits in, and nothing else."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from services.common.diagnostics import dump_tasks, task_stacks

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]


async def _waits_for_ever(event: asyncio.Event, secret: str) -> None:
    del secret  # a local value: it must not appear in a dump
    await event.wait()


async def test_a_stuck_task_shows_where_it_waits_and_no_values() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_waits_for_ever(event, "+14155550123"), name="stuck-turn")
    await asyncio.sleep(0)
    try:
        [stuck] = [s for s in task_stacks() if s["task"] == "stuck-turn"]
        frames = stuck["frames"]
        assert isinstance(frames, list) and frames
        assert frames[-1].endswith("in _waits_for_ever")
        with capture_logs() as logs:
            dump_tasks()
        assert any(e.get("task") == "stuck-turn" for e in logs)
        summary = [e for e in logs if e["event"] == "diagnostics.tasks"]
        assert summary and summary[0]["count"] >= 2
        assert "+1415" not in repr(logs)
    finally:
        event.set()
        await task
