"""Per-instance inbox: how egress reaches the ingress instance that holds a live connection.

Each ingress instance reads one Redis stream, `<prefix>:inbox:<instance id>`, in one loop.
Egress appends small typed entries (`shared.contracts.inbox`) to the holder's stream; the
reader parses each by its kind and hands it to the handler registered for that type. The
inbox is a doorbell and a fast path, not the record of truth: anything that must survive
the instance (a chat reply) is stored elsewhere first, so an inbox that dies with its
instance loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.backoff import Backoff, BackoffCounter
from services.common.health import Dependency
from shared.contracts.inbox import InboxEntry
from shared.logs import get_logger

log = get_logger("inbox")

InboxHandler = Callable[[Any], Awaitable[None]]
"""Called with the parsed entry, of the type it was registered for."""

INBOX_MAXLEN = 10_000
INBOX_TTL_S = 3_600
READ_RETRY = Backoff(base_s=0.2, cap_s=2.0, jitter="equal")
"""Backoff of the reader while Redis is away; short, since doorbells wait on it."""


def inbox_key(prefix: str, instance_id: str) -> str:
    """Redis key of one instance's inbox stream."""
    return f"{prefix}:inbox:{instance_id}"


class InboxWriter:
    """Appends entries to another instance's inbox."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def post(self, instance_id: str, entry: InboxEntry) -> None:
        """Append one entry; bounded length and idle expiry keep dead inboxes small."""
        key = inbox_key(self._prefix, instance_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, entry.to_fields(), maxlen=INBOX_MAXLEN, approximate=True)  # type: ignore[arg-type]  # redis-py's invariant dict type
            pipe.expire(key, INBOX_TTL_S)
            await pipe.execute()


class InboxReader:
    """The one loop per instance that drains its inbox and dispatches entries by kind."""

    def __init__(self, redis: Redis, prefix: str, instance_id: str) -> None:
        self._redis = redis
        self._key = inbox_key(prefix, instance_id)
        self._handlers: dict[str, tuple[type[InboxEntry], list[InboxHandler]]] = {}

    def on(self, entry_type: type[InboxEntry], handler: InboxHandler) -> None:
        """Register a handler of one entry type. Several channels may take the same type
        (a held answer): each gets every entry and ignores correlation ids it does not hold."""
        registered_type, handlers = self._handlers.setdefault(entry_type.kind, (entry_type, []))
        if registered_type is not entry_type:
            raise ValueError(f"inbox kind {entry_type.kind!r} is taken by another entry type")
        handlers.append(handler)

    async def run(self, block_ms: int = 5_000) -> None:
        """Read until cancelled. Entries are deleted once handled.

        Survives Redis outages (down, restarting, `BusyLoadingError` while it loads) by itself:
        it retries with a capped backoff and logs once when an outage starts and once when it
        ends, not on every retry. Give the reader a client made with
        `make_redis(url, socket_timeout=None)`: the read is bounded here, a little beyond the
        server-side block time.
        """
        last_id = "0-0"
        redis_health = Dependency("redis.inbox")  # logs an outage once, and its end
        waits = BackoffCounter(READ_RETRY)
        while True:
            try:
                async with asyncio.timeout(block_ms / 1000 + 5):
                    batches = await self._redis.xread(
                        {self._key: last_id}, count=100, block=block_ms
                    )
                redis_health.succeeded()
                waits.succeeded()
                # [[stream, [(entry id, {field: value}), ...]]], str with decode_responses
                batch: list[tuple[str, list[tuple[str, dict[str, str]]]]]
                batch = batches or []  # type: ignore[assignment]  # redis-py returns a union
                for _stream, entries in batch:
                    for entry_id, fields in entries:
                        last_id = entry_id
                        await self._dispatch(fields)
                        await self._redis.xdel(self._key, entry_id)
            except (RedisError, TimeoutError) as exc:
                # Redis is away: keep the loop alive and try again. An entry handled but not
                # deleted stays in the stream until its idle expiry (`INBOX_TTL_S`).
                redis_health.failed(exc)
                await asyncio.sleep(waits.failed())
            except Exception as exc:
                # Not Redis's documented errors (a client bug mid-reconnect, say). This loop is
                # the instance's only doorbell: it must outlive anything short of cancellation.
                redis_health.failed(exc)
                await asyncio.sleep(waits.failed())

    async def _dispatch(self, fields: dict[str, str]) -> None:
        registered = self._handlers.get(fields.get("kind", ""))
        if registered is None:
            log.warning("inbox.entry.unknown_kind", kind=fields.get("kind"))
            return
        entry_type, handlers = registered
        try:
            entry = entry_type.from_fields(fields)
        except ValidationError:
            log.warning("inbox.entry.malformed", kind=entry_type.kind)
            return
        for handler in handlers:
            await self._handle(handler, entry)

    async def _handle(self, handler: InboxHandler, entry: InboxEntry) -> None:
        try:
            await handler(entry)
        except Exception:
            # The entry is a doorbell; the durable copy stays where the handler left it.
            log.exception("inbox.entry.failed", kind=entry.kind)
