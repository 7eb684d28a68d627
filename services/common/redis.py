"""Redis client construction, the one place options are chosen, and the cluster helpers.

One URL decides single node or Redis Cluster (docs/redis-cluster.md):
- `redis://host:port/0` (or `rediss://`): one node, the default.
- `redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`): a Redis Cluster; the
  listed nodes are only seeds, the client learns the rest of the cluster from them.

Every multi-key script, pipeline or transaction of Switchboard keeps its keys in one hash
slot by giving them the same hash tag (`hash_tag`), so the same code runs on both.

Atomic multi-command steps are Lua scripts, never MULTI/EXEC pipelines: redis-py's asyncio
cluster pipeline runs each command queued in a transaction on a new thread with its own
event loop (it blocks the caller's loop, and leaves connections bound to a loop that is
gone), so `pipeline(transaction=True)` is not used anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.commands.core import AsyncScript
from redis.typing import EncodableT

MAX_CONNECTIONS = 512
"""Per client (per node on a cluster). When all are busy a single-node command waits for one
(up to the socket timeout) instead of failing: a brain running hundreds of turns at once must
queue, not error and retry. redis-py's cluster client has no waiting pool: it raises
`MaxConnectionsError` instead, which the callers' Redis error handling treats as an outage."""

_CONNECTION_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 30,
}
"""What every client's connections share, single node or cluster."""

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that mean Redis Cluster, and the plain scheme each stands for."""


def is_cluster_url(url: str) -> bool:
    """Whether `url` names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`)."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def make_redis(url: str, socket_timeout: float | None = 10.0) -> Redis:
    """An asyncio Redis client (single node or cluster, by `url`) with str responses and
    bounded timeouts.

    `socket_timeout=None` is for a client that only runs blocking reads (the inbox loop,
    lock waits): redis-py then skips its `asyncio.wait_for` wrapper, which on Python 3.11 can
    swallow a cancellation (CPython gh-86296) and hang shutdown; the caller bounds reads itself.

    The cluster client is returned typed as `Redis`: both implement the same command API, and
    Switchboard uses only commands that route by key (never SELECT, KEYS or cross-slot MGET).
    """
    if is_cluster_url(url):
        return cast(Redis, make_cluster(url, socket_timeout))
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=socket_timeout,
        socket_timeout=socket_timeout,
        retry_on_timeout=True,
        **_CONNECTION_OPTIONS,
    )
    return Redis.from_pool(pool)


def cluster_seeds(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The seed nodes of a cluster URL and the connection options of its query and userinfo.

    Raises ValueError for a URL that is not a cluster URL or that selects a database other
    than 0 (a cluster has only database 0).
    """
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    if not sep or plain is None:
        raise ValueError("not a redis+cluster:// URL")
    netloc, slash, tail = rest.partition("/")
    if "?" in netloc:  # no path: `host:port?option=...`
        netloc, query = netloc.split("?", 1)
        tail, slash = f"?{query}", "/"
    userinfo, at, hosts = netloc.rpartition("@")
    seeds: list[tuple[str, int]] = []
    for hostport in hosts.split(","):
        host, colon, port = hostport.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError("cluster URL nodes must be host:port")
        seeds.append((host.strip("[]"), int(port)))
    options: dict[str, Any] = dict(
        parse_url(f"{plain}://{userinfo}{at}{hosts.split(',')[0]}{slash}{tail}")
    )
    for key in ("host", "port", "path"):
        options.pop(key, None)
    if int(options.pop("db", 0) or 0) != 0:
        raise ValueError("Redis Cluster has only database 0")
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return seeds, options


class _Cluster(RedisCluster):
    """redis-py's cluster client, initialized before a command is routed.

    redis-py 8.1 resolves a command's routing policy (which may ask a node) *before* it loads
    the slot map, and loading the map closes the connections of the seed nodes it replaces.
    Concurrent first commands on a new client (a brain starting hundreds of turns) then meet
    a connection closed under them (`AttributeError` on its writer: 3 runs in 40 in a test
    of 11 concurrent scripts, none with this class).
    """

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def make_cluster(url: str, socket_timeout: float | None = 10.0) -> RedisCluster:
    """A Redis Cluster client for a `redis+cluster://` URL, with `make_redis`'s options."""
    seeds, options = cluster_seeds(url)
    return _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds],
        max_connections=MAX_CONNECTIONS,
        socket_timeout=socket_timeout,
        **(_CONNECTION_OPTIONS | options),  # the URL's own options win, as in `from_url`
    )


def hash_tag(value: str) -> str:
    """`value` as a Redis Cluster hash tag: keys with the same tag share one hash slot.

    Only the text between the key's first `{` and the next `}` is hashed, so the key prefix
    must contain no `{`. An id containing `}` still works (its keys share the shortened tag).
    """
    return "{" + value + "}"


HSET_EXPIRE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
"""KEYS: a hash. ARGV: TTL (s), then field, value, field, value... Sets the fields and the
hash's expiry in one step (register it with `register_script` and call `hset_expire`)."""


async def hset_expire(script: AsyncScript, key: str, mapping: dict[str, str], ttl_s: int) -> None:
    """Set `mapping` on hash `key` and its expiry atomically (`script`: `HSET_EXPIRE`)."""
    if mapping:
        flat = [item for pair in mapping.items() for item in pair]
        await script(keys=[key], args=[ttl_s, *flat])


async def queue_script(
    pipe: Any, script: AsyncScript, keys: Sequence[str], args: Sequence[EncodableT]
) -> None:
    """Queue a registered Lua script on a pipeline of either client.

    redis-py loads a pipeline's scripts before running it only on a single-node pipeline; a
    cluster pipeline would meet NOSCRIPT on any node that never saw the script (a replica just
    promoted, say), so there the script's body travels with the call (EVAL; Redis caches it).
    """
    if isinstance(pipe, ClusterPipeline):
        pipe.eval(str(script.script), len(keys), *keys, *args)
        return
    await script(keys=list(keys), args=list(args), client=pipe)
