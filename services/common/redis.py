"""Redis client construction, the one place options are chosen."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

MAX_CONNECTIONS = 512
"""Per client. When all are busy a command waits for one (up to the socket timeout) instead
of failing: a brain running hundreds of turns at once must queue, not error and retry."""


def make_redis(url: str, socket_timeout: float | None = 10.0) -> Redis:
    """An asyncio Redis client with str responses and bounded timeouts.

    `socket_timeout=None` is for a client that only runs blocking reads (the inbox loop):
    redis-py then skips its `asyncio.wait_for` wrapper, which on Python 3.11 can swallow a
    cancellation (CPython gh-86296) and hang shutdown; the caller bounds reads itself.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=socket_timeout,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        health_check_interval=30,
        retry_on_timeout=True,
    )
    return Redis.from_pool(pool)
