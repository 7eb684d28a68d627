"""Cancellation that a loop cannot lose.

On Python 3.11, `asyncio.wait_for` returns the inner result instead of raising when a cancel
lands just as the inner call completes (CPython gh-86296, fixed in 3.12). redis-py wraps
every socket write in `wait_for` when the client has a socket timeout, so a task cancelled
inside a Redis command can carry on as if nothing happened. A one-shot step then simply
finishes, but a background loop never stops, and whoever awaits it at shutdown hangs (seen:
the chat heartbeat outliving its cancel for good, one run in a few hundred under CI load).

The task still knows it was asked to stop (`Task.cancelling()` stays above zero until the
cancel is handled), so every loop that runs until cancelled checks it once per turn.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Raise `CancelledError` if the current task was asked to stop and the cancel was lost.

    Call it at the top of each turn of a loop that runs until cancelled. A task that handled
    a cancel on purpose (and means to go on) calls `Task.uncancel()`, as `asyncio.timeout`
    does, so this never fires for it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
