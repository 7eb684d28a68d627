"""Redis client construction, the one place options are chosen."""

from __future__ import annotations

from redis.asyncio import Redis


def make_redis(url: str, socket_timeout: float | None = 10.0) -> Redis:
    """An asyncio Redis client with str responses and bounded timeouts.

    `socket_timeout=None` is for a client that only runs blocking reads (the inbox loop):
    redis-py then skips its `asyncio.wait_for` wrapper, which on Python 3.11 can swallow a
    cancellation (CPython gh-86296) and hang shutdown; the caller bounds reads itself.
    """
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        health_check_interval=30,
        retry_on_timeout=True,
    )
