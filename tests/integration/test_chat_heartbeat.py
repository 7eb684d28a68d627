"""The chat holder's heartbeat delivers a reply whose doorbell never rang (the ring, or the
holder's lease, lost in a Redis failover): the outbox is the record of truth, and each beat
drains what waits there. Real Redis (single node or, in the cluster lane, a cluster)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from fastapi import WebSocket
from redis.asyncio import Redis

from services.channels.webchat.connections import ChatConnection
from services.channels.webchat.inbound import WebChatChannel
from services.channels.webchat.store import ChatStore, PendingReply, now_ms
from services.channels.webchat.tokens import TokenSigner
from services.common.ops import OpsEmitter
from tests.support.ops import RecordingOps

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


class FakeSocket:
    """Records the frames a connection sends."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def send_json(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)


def channel(store: ChatStore, ops: RecordingOps) -> WebChatChannel:
    return WebChatChannel(
        signer=TokenSigner(b"heartbeat-test-secret-" + b"x" * 20, ttl_s=3_600),
        store=store,
        publisher=cast(Any, None),  # nothing is published here
        identity=cast(Any, None),
        ops=cast(OpsEmitter, ops),
        instance_id="ingress-a",
        max_text=1_000,
    )


async def test_a_reply_stored_without_a_ring_is_delivered_by_the_next_beat(
    redis: Redis, namespace: str
) -> None:
    store = ChatStore(redis, namespace)
    ops = RecordingOps()
    chat = channel(store, ops)
    socket = FakeSocket()
    chat.connections.add(ChatConnection(cast(WebSocket, socket), "cs_quiet"))
    reply = PendingReply("r1", "conv-1", "m1", "hello", now_ms())
    await store.put_reply("cs_quiet", reply)  # stored, never rung
    assert await store.sessions_with_pending(["cs_quiet", "cs_other"]) == ["cs_quiet"]

    beating = asyncio.create_task(chat.heartbeat(0.05))
    try:
        async with asyncio.timeout(5):
            while not socket.frames:
                await asyncio.sleep(0.02)
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)

    assert [(f["type"], f["reply_id"]) for f in socket.frames] == [("reply", "r1")]
    assert await store.pending("cs_quiet") == []  # acknowledged once sent
    assert await store.sessions_with_pending(["cs_quiet"]) == []
