"""The per-instance inbox against a real Redis: a writer posts typed entries, one reader loop
parses each by its kind and dispatches it to the handler of its type."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from structlog.testing import capture_logs

from services.common.inbox import INBOX_TTL_S, InboxReader, InboxWriter, inbox_key
from services.common.redis import make_redis
from shared.contracts.inbox import ChatDoorbell, HeldAnswer, InboxEntry
from tests.support.infra import Infra
from tests.support.kafka import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

INSTANCE = "ingress-1"

Seen = list[InboxEntry]


class Boom(InboxEntry):
    """An entry type of this test only (as a channel may define its own)."""

    kind: ClassVar[str] = "boom"
    n: str


class Mystery(InboxEntry):
    """An entry type no reader registers."""

    kind: ClassVar[str] = "mystery"
    x: str


def doorbell(session_id: str) -> ChatDoorbell:
    return ChatDoorbell(session_id=session_id)


def recorder(seen: Seen) -> Callable[[InboxEntry], Awaitable[None]]:
    """A handler that appends the parsed entry to `seen`."""

    async def handle(entry: InboxEntry) -> None:
        seen.append(entry)

    return handle


def session_ids(seen: Seen) -> list[str]:
    return [entry.session_id for entry in seen if isinstance(entry, ChatDoorbell)]


@contextlib.asynccontextmanager
async def running(reader: InboxReader, block_ms: int = 100) -> AsyncIterator[asyncio.Task[None]]:
    """Run the reader loop as a task; stop it on exit."""
    task = asyncio.create_task(reader.run(block_ms=block_ms))
    try:
        yield task
    finally:
        await stop(task)


async def stop(task: asyncio.Task[None]) -> bool:
    """Cancel the task and wait for it; True if the first cancel was enough.

    Cancels again if needed, so a swallowed cancellation cannot hang the test session.
    """
    for attempt in range(10):
        task.cancel()
        await asyncio.wait({task}, timeout=1)
        if task.done():
            with contextlib.suppress(BaseException):
                task.result()
            return attempt == 0
    raise AssertionError(f"reader ignored 10 cancellations: {awaiting(task)}")


def awaiting(task: asyncio.Task[None]) -> str:
    """Where a task is suspended: its chain of awaited coroutines."""
    chain: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename.split('/')[-1]}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None)
    return f"cancelling={task.cancelling()} " + " > ".join(chain)


@pytest_asyncio.fixture
async def reader_redis(infra: Infra) -> AsyncIterator[Redis]:
    """The reader's own client, as in production (its XREAD blocks a connection)."""
    client = make_redis(infra.redis_url, socket_timeout=None)
    yield client
    await client.aclose()


@pytest.fixture
def writer(redis: Redis, namespace: str) -> InboxWriter:
    return InboxWriter(redis, namespace)


@pytest.fixture
def reader(reader_redis: Redis, namespace: str) -> InboxReader:
    return InboxReader(reader_redis, namespace, INSTANCE)


async def test_entries_reach_the_handler_of_their_type_parsed_and_in_order(
    writer: InboxWriter, reader: InboxReader
) -> None:
    seen: Seen = []
    reader.on(ChatDoorbell, recorder(seen))
    reader.on(HeldAnswer, recorder(seen))
    held = HeldAnswer(correlation_id="c1", reply_id="r1", body='{"actions": []}')

    async with running(reader):
        await writer.post(INSTANCE, doorbell("s1"))
        await writer.post(INSTANCE, held)
        await writer.post(INSTANCE, ChatDoorbell(session_id="s2", reply_id="r2"))
        await eventually(lambda: len(seen) >= 3, timeout_s=5)

    assert seen == [
        ChatDoorbell(session_id="s1"),
        held,
        ChatDoorbell(session_id="s2", reply_id="r2"),
    ]


async def test_entries_travel_as_flat_string_fields_with_their_kind(
    writer: InboxWriter, redis: Redis, namespace: str
) -> None:
    await writer.post(INSTANCE, ChatDoorbell(session_id="s1", reply_id="r1"))
    stored: list[tuple[str, dict[str, str]]]
    stored = await redis.xrange(inbox_key(namespace, INSTANCE))  # type: ignore[assignment]  # redis-py returns a union
    [(_, fields)] = stored
    assert fields == {"kind": "chat", "session_id": "s1", "reply_id": "r1"}
    assert ChatDoorbell.from_fields(fields) == ChatDoorbell(session_id="s1", reply_id="r1")


async def test_handled_entries_are_deleted_from_the_stream(
    writer: InboxWriter, reader: InboxReader, redis: Redis, namespace: str
) -> None:
    seen: Seen = []
    reader.on(ChatDoorbell, recorder(seen))
    key = inbox_key(namespace, INSTANCE)

    async with running(reader):
        for n in range(5):
            await writer.post(INSTANCE, doorbell(f"s{n}"))
        await eventually(lambda: len(seen) >= 5, timeout_s=5)
        remaining = await eventually(lambda: _xlen_is_zero(redis, key), timeout_s=5)

    assert len(seen) == 5
    assert remaining is True
    assert await redis.xlen(key) == 0


async def _xlen_is_zero(redis: Redis, key: str) -> bool:
    return int(await redis.xlen(key)) == 0


async def test_posting_sets_an_idle_expiry_on_the_stream(
    writer: InboxWriter, redis: Redis, namespace: str
) -> None:
    await writer.post(INSTANCE, doorbell("s1"))
    ttl = await redis.ttl(inbox_key(namespace, INSTANCE))
    assert INBOX_TTL_S - 60 <= ttl <= INBOX_TTL_S


async def test_unknown_kind_is_logged_skipped_and_the_loop_goes_on(
    writer: InboxWriter, reader: InboxReader, redis: Redis, namespace: str
) -> None:
    seen: Seen = []
    reader.on(ChatDoorbell, recorder(seen))

    with capture_logs() as logs:
        async with running(reader) as task:
            await writer.post(INSTANCE, Mystery(x="1"))
            await writer.post(INSTANCE, doorbell("after-unknown"))
            await eventually(lambda: len(seen) >= 1, timeout_s=5)
            assert not task.done()

    assert session_ids(seen) == ["after-unknown"]
    assert await redis.xlen(inbox_key(namespace, INSTANCE)) == 0
    unknown = [e for e in logs if e["event"] == "inbox.entry.unknown_kind"]
    assert [e["kind"] for e in unknown] == ["mystery"]


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "chat"},  # no session id
        {"kind": "chat", "session_id": ""},  # an empty one
        {"kind": "held_answer", "correlation_id": "c1"},  # no body
    ],
    ids=["missing_field", "empty_field", "held_without_body"],
)
async def test_an_entry_that_does_not_parse_is_logged_skipped_and_the_loop_goes_on(
    reader: InboxReader, redis: Redis, namespace: str, fields: dict[str, str]
) -> None:
    seen: Seen = []
    reader.on(ChatDoorbell, recorder(seen))
    reader.on(HeldAnswer, recorder(seen))
    key = inbox_key(namespace, INSTANCE)

    with capture_logs() as logs:
        async with running(reader) as task:
            await redis.xadd(key, fields)  # type: ignore[arg-type]  # redis-py's dict type
            await redis.xadd(key, doorbell("after-malformed").to_fields())  # type: ignore[arg-type]
            await eventually(lambda: len(seen) >= 1, timeout_s=5)
            assert not task.done()

    assert seen == [doorbell("after-malformed")]
    assert await redis.xlen(key) == 0
    malformed = [e for e in logs if e["event"] == "inbox.entry.malformed"]
    assert [e["kind"] for e in malformed] == [fields["kind"]]


async def test_a_failing_handler_does_not_stop_the_loop(
    writer: InboxWriter, reader: InboxReader
) -> None:
    seen: Seen = []

    async def explode(entry: Boom) -> None:
        seen.append(entry)
        raise RuntimeError("handler failed")

    reader.on(Boom, explode)
    reader.on(ChatDoorbell, recorder(seen))

    async with running(reader) as task:
        await writer.post(INSTANCE, Boom(n="1"))
        await writer.post(INSTANCE, doorbell("after-failure"))
        await eventually(lambda: len(seen) >= 2, timeout_s=5)
        assert not task.done()

    assert seen == [Boom(n="1"), doorbell("after-failure")]


async def test_every_handler_of_a_kind_gets_each_entry_even_after_one_fails(
    writer: InboxWriter, reader: InboxReader
) -> None:
    # Two channels may hold requests answered by the same entry type (a held answer):
    # each gets every entry and ignores correlation ids it does not hold.
    first: Seen = []
    second: Seen = []

    async def explode(entry: HeldAnswer) -> None:
        first.append(entry)
        raise RuntimeError("one channel's handler failed")

    reader.on(HeldAnswer, explode)
    reader.on(HeldAnswer, recorder(second))

    async with running(reader):
        await writer.post(INSTANCE, HeldAnswer(correlation_id="c1", body="[]"))
        await eventually(lambda: len(second) >= 1, timeout_s=5)

    assert first == second == [HeldAnswer(correlation_id="c1", body="[]")]


async def test_a_kind_belongs_to_one_entry_type(reader: InboxReader) -> None:
    class Impostor(InboxEntry):
        kind: ClassVar[str] = ChatDoorbell.kind

    reader.on(ChatDoorbell, recorder([]))
    with pytest.raises(ValueError, match="taken by another entry type"):
        reader.on(Impostor, recorder([]))


async def test_entries_posted_before_the_reader_started_are_delivered(
    writer: InboxWriter, reader: InboxReader
) -> None:
    await writer.post(INSTANCE, doorbell("early-1"))
    await writer.post(INSTANCE, doorbell("early-2"))
    seen: Seen = []
    reader.on(ChatDoorbell, recorder(seen))

    async with running(reader):
        await writer.post(INSTANCE, doorbell("late"))
        await eventually(lambda: len(seen) >= 3, timeout_s=5)

    assert session_ids(seen) == ["early-1", "early-2", "late"]


async def test_an_instance_reads_only_its_own_inbox(
    writer: InboxWriter, reader: InboxReader, redis: Redis, namespace: str
) -> None:
    seen: Seen = []
    reader.on(ChatDoorbell, recorder(seen))

    async with running(reader):
        await writer.post("ingress-other", doorbell("not-mine"))
        await writer.post(INSTANCE, doorbell("mine"))
        await eventually(lambda: len(seen) >= 1, timeout_s=5)
        await asyncio.sleep(0.3)

    assert session_ids(seen) == ["mine"]
    assert await redis.xlen(inbox_key(namespace, "ingress-other")) == 1


# --- stopping, idling and outages ----------------------------------------------------------


async def test_reader_stops_on_the_first_cancel(
    writer: InboxWriter, reader_redis: Redis, redis: Redis, namespace: str
) -> None:
    """Shutdown cancels the reader once and awaits it. Repeated: the race is timing-bound."""
    for attempt in range(40):
        instance = f"{INSTANCE}-{attempt}"
        reader = InboxReader(reader_redis, namespace, instance)
        seen: Seen = []
        reader.on(ChatDoorbell, recorder(seen))
        task = asyncio.create_task(reader.run(block_ms=100))
        await writer.post(instance, doorbell(f"s{attempt}"))
        await eventually(partial(_xlen_is_zero, redis, inbox_key(namespace, instance)), 5)
        assert len(seen) == 1

        stopped_at_once = await stop(task)

        assert stopped_at_once, f"attempt {attempt}: cancellation was swallowed"


async def test_idle_reader_with_production_defaults_reads_without_errors(
    reader_redis: Redis, namespace: str
) -> None:
    failures: list[str] = []
    real_xread = reader_redis.xread

    async def spied_xread(*args: Any, **kwargs: Any) -> Any:
        try:
            return await real_xread(*args, **kwargs)
        except Exception as exc:
            failures.append(repr(exc))
            raise

    reader_redis.xread = spied_xread  # type: ignore[method-assign]
    task = asyncio.create_task(InboxReader(reader_redis, namespace, INSTANCE).run())
    try:
        await eventually(lambda: failures, timeout_s=12)  # longer than two 5 s blocks
    finally:
        await stop(task)

    assert failures == []


# --- a Redis outage while the reader deletes an entry ---------------------------------------


class FlakyProxy:
    """A TCP proxy to the real Redis that the test can cut and restore (a Redis outage)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        self._writers += [client_w, server_w]
        await asyncio.gather(
            self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True
        )

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65_536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


async def test_reader_survives_a_redis_outage_while_deleting_an_entry(
    infra: Infra, writer: InboxWriter, namespace: str
) -> None:
    host, port = infra.redis_url.removeprefix("redis://").split("/")[0].split(":")
    proxy = FlakyProxy(host, int(port))
    await proxy.start()
    reader_redis = make_redis(f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=None)
    reader = InboxReader(reader_redis, namespace, INSTANCE)
    seen: Seen = []
    cutting = [True]

    async def cut_redis_then_record(entry: ChatDoorbell) -> None:
        if cutting[0]:
            await proxy.cut()  # Redis becomes unreachable right before the reader's XDEL
        seen.append(entry)

    reader.on(ChatDoorbell, cut_redis_then_record)
    try:
        async with running(reader) as task:
            await writer.post(INSTANCE, doorbell("during-outage"))
            await eventually(lambda: len(seen) >= 1, timeout_s=5)
            # Keep Redis away longer than the client's retry window (about 2-4 s).
            await eventually(task.done, timeout_s=8)
            cutting[0] = False
            await proxy.start()  # Redis is back

            await writer.post(INSTANCE, doorbell("after-outage"))
            await eventually(lambda: len(seen) >= 2, timeout_s=5)

            assert not task.done(), f"reader loop ended: {task.exception()!r}"
            assert session_ids(seen) == ["during-outage", "after-outage"]
    finally:
        await reader_redis.aclose()
