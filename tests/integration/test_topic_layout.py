"""Topics are created with the wanted layout, and existing topics that differ are reported
(at service start, by `switchboard topics create` and `switchboard topics check`), on the
session's real broker (one node: replication 1, min ISR 1). The 3-broker side is in
tests/resilience/test_kafka_cluster.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidReplicationFactorError
from structlog.testing import capture_logs

from services.channels.registry import channel_names
from services.common.kafka import ensure_topics, ensure_topics_eventually
from services.common.kafka_topics import TopicLayout, TopicMismatch
from shared.topics import Topics
from tests.support.infra import Infra

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SWITCHBOARD = Path(sys.executable).parent / "switchboard"


async def topic_state(bootstrap: str, name: str) -> tuple[int, int, str]:
    """Partitions, replication factor and min.insync.replicas of one topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [topic] = await admin.describe_topics([name])
        [configs] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"min.insync.replicas": None})]
        )
    finally:
        await admin.close()
    [resource] = configs.to_object()["resources"]
    [entry] = resource["config_entries"]
    partitions = topic["partitions"]
    return len(partitions), len(partitions[0]["replicas"]), entry["config_value"]


async def create_raw(bootstrap: str, name: str, partitions: int, min_insync: int) -> None:
    """A topic made by someone else, bypassing Switchboard's settings."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs={"min.insync.replicas": str(min_insync)})]
        )
    finally:
        await admin.close()


async def test_missing_topics_are_created_with_the_wanted_layout(
    infra: Infra, namespace: str
) -> None:
    names = [f"{namespace}.a", f"{namespace}.b"]
    report = await ensure_topics(infra.kafka_bootstrap_servers, names, 4)
    assert report.layout == TopicLayout(partitions=4, replication=1, min_insync=1)
    assert report.created == names and report.problems == []
    # min.insync.replicas is set on the topic itself, not left to the broker's default.
    assert await topic_state(infra.kafka_bootstrap_servers, names[0]) == (4, 1, "1")
    again = await ensure_topics(infra.kafka_bootstrap_servers, names, 4)
    assert again.created == [] and again.problems == []


async def test_existing_topics_that_differ_are_reported_not_changed(
    infra: Infra, namespace: str
) -> None:
    odd = f"{namespace}.odd"
    await create_raw(infra.kafka_bootstrap_servers, odd, partitions=2, min_insync=2)
    with capture_logs() as logs:
        await ensure_topics_eventually(infra.kafka_bootstrap_servers, [odd], 4)
    warnings = [entry for entry in logs if entry["event"] == "kafka.topic.mismatch"]
    assert [(w["setting"], w["actual"], w["wanted"]) for w in warnings] == [
        ("partitions", 2, 4),
        ("min.insync.replicas", 2, 1),
    ]
    report = await ensure_topics(infra.kafka_bootstrap_servers, [odd], 4)
    assert report.mismatches == [
        TopicMismatch(odd, "partitions", 2, 4),
        TopicMismatch(odd, "min.insync.replicas", 2, 1),
    ]
    assert await topic_state(infra.kafka_bootstrap_servers, odd) == (2, 1, "2"), "changed"


async def test_a_replication_factor_the_cluster_cannot_hold_is_refused(
    infra: Infra, namespace: str
) -> None:
    # Raised, so a starting service retries (a broker may be on its way) instead of
    # running on topics it never got.
    with pytest.raises(InvalidReplicationFactorError):
        await ensure_topics(infra.kafka_bootstrap_servers, [f"{namespace}.x"], 1, replication=3)


def run_cli(infra: Infra, namespace: str, action: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SWITCHBOARD), "topics", action],
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
            "SWITCHBOARD_TOPIC_NAMESPACE": namespace,
            "LOG_LEVEL": "ERROR",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_topics_check_fails_until_create_and_on_every_difference(
    infra: Infra, namespace: str
) -> None:
    every = Topics(namespace).all(channel_names())
    missing = run_cli(infra, namespace, "check")
    assert missing.returncode == 1
    assert f"MISMATCH topic {every[0]}: missing" in missing.stderr
    assert await ensure_topics(infra.kafka_bootstrap_servers, every, 6, create=False)

    created = run_cli(infra, namespace, "create", SWITCHBOARD_TOPIC_PARTITIONS="3")
    assert created.returncode == 0, created.stderr
    assert "partitions 3, replication factor 1, min.insync.replicas 1 (1 brokers)" in created.stdout
    assert f"({len(every)} created)" in created.stdout
    assert run_cli(infra, namespace, "check", SWITCHBOARD_TOPIC_PARTITIONS="3").returncode == 0

    # The deployment now wants 6 partitions: create still succeeds but says so, check fails.
    recreated = run_cli(infra, namespace, "create")
    assert recreated.returncode == 0
    assert f"MISMATCH topic {every[0]}: partitions is 3, wanted 6" in recreated.stderr
    checked = run_cli(infra, namespace, "check")
    assert checked.returncode == 1
    assert f"0 of {len(every)} topics as wanted" in checked.stdout
