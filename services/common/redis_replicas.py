"""Writes that must survive a Redis Cluster failover: the script, then `WAIT` for a replica.

Redis replication is asynchronous: a master answers a write before its replica has it, and a
master that dies takes its last writes with it when the replica is promoted. For most state
that costs little (docs/redis-cluster.md says what); for a few records it would cost a
customer: the chat outbox (a reply stored there and lost is never delivered, once egress has
committed its offset) and the SMS send intent (lost, a redelivered reply is texted twice).
Those writes are followed by `WAIT 1 <ms>` on the same connection, so they are on a replica
before the caller goes on; with one replica per master, that replica is the one promoted.

Only on a cluster: a single node has no failover to survive. A master without a replica
(none configured, or a replica just promoted whose own replica has not come back) would make
every such write wait the full timeout; after a `WAIT` that found none, writes to that master
skip waiting for a while (logged once).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.typing import EncodableT

from services.common.redis import queue_script
from shared.logs import ThrottledLog, get_logger

log = get_logger("redis.replicas")
_unreplicated = ThrottledLog(log, "redis.replica_wait.unreplicated", every_s=300.0)

WAIT_MS = 200
"""How long a write waits for its replica; on a healthy link it takes well under 1 ms."""
NO_REPLICA_BACKOFF_S = 60.0


class ReplicatedWrites:
    """Runs scripts whose effect must reach a replica before the caller acts on it."""

    def __init__(self, redis: Redis, wait_ms: int = WAIT_MS) -> None:
        self._redis: Any = redis
        self._cluster = isinstance(redis, RedisCluster)
        self._wait_ms = wait_ms
        self._skip_until: dict[str, float] = {}
        """Per master: until when not to wait (it had no replica: a fresh one, say, or the
        replica promoted after a failover, whose own replica has not come back yet)."""

    async def run(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[EncodableT]
    ) -> Any:
        """The script's result, once a replica has its writes (on a cluster with replicas)."""
        if not self._cluster:
            return await script(keys=list(keys), args=list(args))
        # The slot map is loaded by a client's first command; this may be it (a no-op after).
        await self._redis.initialize()
        node = self._redis.get_node_from_key(keys[0])
        if time.monotonic() < self._skip_until.get(node.name, 0.0):
            return await script(keys=list(keys), args=list(args))
        async with self._redis.pipeline(transaction=False) as pipe:
            await queue_script(pipe, script, keys, args)
            # Same node, so the same connection in the pipeline: WAIT counts this write.
            pipe.execute_command("WAIT", 1, self._wait_ms, target_nodes=node)
            result, replicas = await pipe.execute()
        if int(replicas) < 1:
            self._skip_until[node.name] = time.monotonic() + NO_REPLICA_BACKOFF_S
            _unreplicated.warning(wait_ms=self._wait_ms)
        return result
