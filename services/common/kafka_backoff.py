"""Backoff for aiokafka's metadata refreshes, which it retries in a tight loop.

aiokafka has no `reconnect.backoff.ms`. When a partition's leader is unknown (a broker going
down is exactly that), its producer's sender forces a metadata update, the update fails at
once (connection refused), and the sender forces the next one immediately: a busy loop that
burned a core and wrote ~17,000 "Unable connect to node" lines a second in the field. It
depended on timing (only when the leader was lost, not just the connection), so some
outages were quiet and some were not.

`throttle_metadata_retries` wraps one client's metadata update so that after a failure the
next attempt waits, exponentially longer up to `cap_s`, like Java's reconnect backoff; a
success resets it. Only failed updates wait, so a healthy client is untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter

from services.common.backoff import Backoff, BackoffCounter

METADATA_FAILURES = Counter(
    "switchboard_kafka_metadata_failures_total", "Kafka metadata refreshes that reached no broker"
)


METADATA_BACKOFF = Backoff(base_s=0.25, cap_s=5.0, jitter="equal")


def throttle_metadata_retries(
    client: Any,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> BackoffCounter:
    """Make `client` (an `aiokafka.AIOKafkaClient`) wait after each failed metadata update.

    The wait happens inside the update, so everything waiting on it (the sender, the
    fetcher, `fetch_all_metadata`) waits too, instead of asking again at once."""
    backoff = BackoffCounter(METADATA_BACKOFF)
    update = client._metadata_update  # aiokafka offers no hook; see the module docstring

    async def _metadata_update_with_backoff(cluster_metadata: Any, topics: Any) -> bool:
        updated = bool(await update(cluster_metadata, topics))
        if updated:
            backoff.succeeded()
        else:
            METADATA_FAILURES.inc()
            await sleep(backoff.failed())
        return updated

    client._metadata_update = _metadata_update_with_backoff
    return backoff
