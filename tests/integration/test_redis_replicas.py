"""`ReplicatedWrites` on a real Redis: on a cluster a write is on its master's replica when
`run` returns (WAIT on the master's connection); on one node there is nothing to wait for and
no WAIT is sent. Runs in both lanes (single node, and TEST_REDIS_CLUSTER=1)."""

from __future__ import annotations

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from services.common.redis_replicas import ReplicatedWrites
from tests.support.infra import TEST_REDIS_CLUSTER

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SET = "redis.call('SET', KEYS[1], ARGV[1]) return 1"


def wait_calls(port: int) -> int:
    with sync_redis.Redis(port=port, decode_responses=True) as node:
        stats = node.info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


async def test_a_write_is_replicated_before_run_returns_on_a_cluster(
    redis: Redis, namespace: str
) -> None:
    key = f"{namespace}:replicated:{{conv-1}}"
    script = redis.register_script(SET)
    writes = ReplicatedWrites(redis)
    if not TEST_REDIS_CLUSTER:
        port = int(redis.connection_pool.connection_kwargs["port"])
        before = wait_calls(port)
        assert await writes.run(script, [key], ["v1"]) == 1
        assert await redis.get(key) == "v1"
        assert wait_calls(port) == before  # one node: nothing to wait for
        return

    cluster = redis  # a RedisCluster under TEST_REDIS_CLUSTER=1 (see tests/conftest.py)
    await cluster.ping()
    master = cluster.get_node_from_key(key)  # type: ignore[attr-defined]
    slot = cluster.keyslot(key)  # type: ignore[attr-defined]
    replicas = cluster.nodes_manager.slots_cache[slot][1:]  # type: ignore[attr-defined]
    assert replicas, "the test cluster has a replica per master"
    before = wait_calls(master.port)

    for n in range(20):
        assert await writes.run(script, [key], [f"v{n}"]) == 1
        # Read at once from the replica: the write is there, not merely on its way.
        with sync_redis.Redis(port=replicas[0].port, decode_responses=True) as replica:
            replica.execute_command("READONLY")
            assert replica.get(key) == f"v{n}"

    assert wait_calls(master.port) == before + 20
