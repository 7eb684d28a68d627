"""The brain's stream relay: which replies reach the holder's inbox straight away, in which
entry, and that a Redis failure never reaches the turn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.brain.config import BrainSettings
from services.common.inbox import InboxWriter
from services.common.stream_relay import STREAM_RELAYED, StreamRelay, stream_entry
from shared.contracts import Reply, ReplyKind, ReplyMode, ReplyModeKind
from shared.contracts.inbox import InboxEntry, StreamPart, StreamStop


def mode(kind: ReplyModeKind) -> ReplyMode:
    if kind is ReplyModeKind.ASYNC:
        return ReplyMode()
    return ReplyMode(
        kind=kind,
        deadline_at=datetime.now(UTC) + timedelta(seconds=10),
        correlation_id="call-1:turn:2",
        reply_to="ingress-a",
    )


def reply(mode_kind: ReplyModeKind = ReplyModeKind.STREAM, **fields: Any) -> Reply:
    values: dict[str, Any] = {
        "reply_id": "r1", "in_reply_to": "call-1:turn:2", "conversation_id": "+15551234567",
        "channel": "vapi", "address": "call-1", "text": "It opens at eight.", "part": 1,
        "final": False, "reply": mode(mode_kind),
    }  # fmt: skip
    return Reply(**{**values, **fields})


class RecordingInbox:
    def __init__(self, error: Exception | None = None) -> None:
        self.posted: list[tuple[str, InboxEntry]] = []
        self.error = error

    async def post(self, instance_id: str, entry: InboxEntry) -> None:
        if self.error is not None:
            raise self.error
        self.posted.append((instance_id, entry))


def relay(inbox: RecordingInbox) -> StreamRelay:
    return StreamRelay(cast(InboxWriter, inbox))


def test_a_streamed_sentence_becomes_the_part_egress_would_forward() -> None:
    entry = stream_entry(reply(part=2, final=True, end_call=True))
    assert entry == StreamPart(
        correlation_id="call-1:turn:2", reply_id="r1", part=2, text="It opens at eight.",
        final=True, end_call=True,
    )  # fmt: skip


def test_a_stop_in_stream_mode_stops_the_holder() -> None:
    entry = stream_entry(reply(kind=ReplyKind.STOP, text=""))
    assert entry == StreamStop(correlation_id="call-1:turn:2")


@pytest.mark.parametrize("kind", [ReplyModeKind.ASYNC, ReplyModeKind.SYNC])
def test_replies_that_are_not_streamed_are_not_relayed(kind: ReplyModeKind) -> None:
    assert stream_entry(reply(kind)) is None


def test_open_and_close_are_not_relayed() -> None:
    assert stream_entry(reply(kind=ReplyKind.OPEN)) is None
    assert stream_entry(reply(kind=ReplyKind.CLOSE)) is None


@pytest.mark.asyncio
async def test_the_relay_posts_to_the_instance_that_published_the_request() -> None:
    inbox = RecordingInbox()
    relayed = StreamRelay.route(reply())
    assert relayed is not None
    await relay(inbox).post(relayed)
    [(holder, entry)] = inbox.posted
    assert holder == "ingress-a"
    assert isinstance(entry, StreamPart) and entry.part == 1


def test_only_streamed_replies_with_a_holder_are_routed() -> None:
    assert StreamRelay.route(reply(ReplyModeKind.SYNC)) is None  # a held answer: egress's
    assert StreamRelay.route(reply(ReplyModeKind.ASYNC)) is None
    assert StreamRelay.route(reply(kind=ReplyKind.CLOSE)) is None


@pytest.mark.asyncio
async def test_a_redis_failure_is_counted_and_never_raised() -> None:
    failed = STREAM_RELAYED.labels("failed")
    before = failed._value.get()
    relayed = StreamRelay.route(reply())
    assert relayed is not None
    await relay(RecordingInbox(RedisConnectionError("down"))).post(relayed)
    assert failed._value.get() == before + 1


def test_the_relay_is_on_by_default_and_can_be_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert BrainSettings().stream_direct is True
    monkeypatch.setenv("BRAIN_STREAM_DIRECT", "false")
    assert BrainSettings().stream_direct is False
