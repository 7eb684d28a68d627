"""Redis client construction, the one place options are chosen."""

from __future__ import annotations

from redis.asyncio import Redis


def make_redis(url: str) -> Redis:
    """An asyncio Redis client with str responses and bounded timeouts."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
    )
