"""`kill -USR1 <pid>`: every asyncio task of a service and where it waits, in the log.

A worker that is alive but stuck (a turn that never ends, a loop waiting on a future nobody
resolves) shows nothing in a thread dump: all its work is coroutines on one thread. This
lists each task with its name and the frames it is suspended in (file, line, function), with
no local values or exception messages, so the dump is safe to share.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

from shared.logs import get_logger

log = get_logger("diagnostics")

MAX_FRAMES = 12


def task_stacks() -> list[dict[str, object]]:
    """The running loop's tasks, each as its name and innermost-last frames."""
    stacks: list[dict[str, object]] = []
    for task in asyncio.all_tasks():
        frames = [
            f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
            for frame in task.get_stack(limit=MAX_FRAMES)
        ]
        stacks.append({"task": task.get_name(), "frames": frames})
    return stacks


def dump_tasks() -> None:
    """Log every task's stack (one line per task) and a summary by innermost frame."""
    stacks = task_stacks()
    where = Counter(str(s["frames"][-1]) if s["frames"] else "?" for s in stacks)  # type: ignore[index]
    for stack in stacks:
        log.warning("diagnostics.task", **stack)
    log.warning("diagnostics.tasks", count=len(stacks), most_common=where.most_common(5))


def install_task_dump() -> None:
    """Dump the tasks on SIGUSR1 (Unix only; a no-op where signals are not available)."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
    except (NotImplementedError, RuntimeError, AttributeError):
        log.info("diagnostics.unavailable")
