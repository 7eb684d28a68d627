"""A cancel lost inside a Redis command (CPython gh-86296, Python 3.11) still stops the loops
that run until cancelled: the chat heartbeat here, and the helper they all share."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from services.channels.webchat.inbound import WebChatChannel
from services.channels.webchat.tokens import TokenSigner
from services.common.cancellation import raise_if_cancelling

pytestmark = pytest.mark.asyncio


async def swallowed_cancel_call() -> None:
    """What redis-py's `wait_for` does on 3.11 when a cancel lands as the reply arrives: the
    command completes and the cancel is dropped."""
    try:
        await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        return


class SwallowingStore:
    """A chat store whose every command loses the cancel that lands inside it."""

    def __init__(self) -> None:
        self.beats = 0
        self.in_command = asyncio.Event()

    async def refresh_holders(self, session_ids: list[str], instance_id: str) -> None:
        self.beats += 1
        self.in_command.set()
        await swallowed_cancel_call()

    async def sessions_with_pending(self, session_ids: list[str]) -> list[str]:
        return []


def heartbeat_channel(store: SwallowingStore) -> WebChatChannel:
    return WebChatChannel(
        signer=TokenSigner(b"cancellation-test-secret-" + b"x" * 20, ttl_s=3_600),
        store=cast(Any, store),
        publisher=cast(Any, None),
        identity=cast(Any, None),
        ops=cast(Any, None),
        instance_id="ingress-a",
        max_text=1_000,
    )


async def test_the_chat_heartbeat_stops_when_its_cancel_is_lost_in_a_command() -> None:
    store = SwallowingStore()
    beating = asyncio.create_task(heartbeat_channel(store).heartbeat(0.001))
    await asyncio.wait_for(store.in_command.wait(), 1)
    beating.cancel()  # lands inside refresh_holders, which drops it

    # asyncio.wait, not wait_for: wait_for would cancel again and wait for the end for good.
    await asyncio.wait({beating}, timeout=1)
    assert beating.done(), "the heartbeat lost its cancel and beats on"
    assert beating.cancelled()


async def test_a_lost_cancel_is_raised_at_the_next_check() -> None:
    checked = asyncio.Event()

    async def loop() -> None:
        while True:
            raise_if_cancelling()
            await swallowed_cancel_call()
            checked.set()

    task = asyncio.create_task(loop())
    await asyncio.wait_for(checked.wait(), 1)
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.cancelled()


async def test_a_handled_timeout_is_not_taken_for_a_cancel() -> None:
    # asyncio.timeout cancels the task and uncancels it once it has turned the cancel into
    # TimeoutError: the loop that caught the timeout goes on.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)
    raise_if_cancelling()  # does not raise
    assert asyncio.current_task() is not None
    assert cast(asyncio.Task[Any], asyncio.current_task()).cancelling() == 0
