"""The Redis URL decides single node or cluster (`services.common.redis`); hash tags."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from services.common.redis import cluster_seeds, hash_tag, is_cluster_url, make_redis

pytestmark = pytest.mark.unit


def test_only_the_cluster_schemes_mean_a_cluster() -> None:
    assert is_cluster_url("redis+cluster://h:7000")
    assert is_cluster_url("REDISS+CLUSTER://h:7000")
    assert not is_cluster_url("redis://h:6379/0")
    assert not is_cluster_url("rediss://h:6379/0")


def test_seeds_credentials_and_options_are_read_from_a_cluster_url() -> None:
    seeds, options = cluster_seeds(
        "redis+cluster://app:s3cret@h1:7000,h2:7001/0?ssl_cert_reqs=none"
    )
    assert seeds == [("h1", 7000), ("h2", 7001)]
    assert options == {"username": "app", "password": "s3cret", "ssl_cert_reqs": "none"}


def test_tls_and_a_url_without_a_path() -> None:
    seeds, options = cluster_seeds("rediss+cluster://h1:7000?ssl_cert_reqs=none")
    assert seeds == [("h1", 7000)]
    assert options == {"ssl": True, "ssl_cert_reqs": "none"}


@pytest.mark.parametrize(
    "url",
    ["redis+cluster://h1:7000/1", "redis+cluster://h1", "redis+cluster://h1:port", "redis://h:1"],
)
def test_bad_cluster_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        cluster_seeds(url)


@pytest.mark.asyncio
async def test_make_redis_picks_the_client_by_the_url() -> None:
    single = make_redis("redis://127.0.0.1:1/0")
    cluster = make_redis("redis+cluster://127.0.0.1:1,127.0.0.1:2")
    try:
        assert type(single) is Redis
        assert isinstance(cluster, RedisCluster)
    finally:  # never connected
        await single.aclose()
        await cluster.aclose()


@pytest.mark.asyncio
async def test_a_cluster_urls_own_options_win_over_the_defaults() -> None:
    cluster = make_redis("redis+cluster://127.0.0.1:1?health_check_interval=5")
    try:
        assert isinstance(cluster, RedisCluster)
        assert cluster.connection_kwargs["health_check_interval"] == 5  # default: 30
        assert cluster.connection_kwargs["decode_responses"] is True  # the defaults stay
    finally:  # never connected
        await cluster.aclose()


def test_keys_with_one_tag_share_a_slot_whatever_else_they_hold() -> None:
    tag = hash_tag("conv-+15550001111")
    keys = [f"sb:lock:{tag}:fence", f"sb:memory:{tag}:turns", f"sb:processed:{tag}:sms:SM1"]
    assert len({key_slot(key.encode()) for key in keys}) == 1
