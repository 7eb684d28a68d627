"""The replication rule for topics, the settings that override it, and how differences are
found and worded (docs/kafka-cluster.md)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.kafka import bootstrap_list
from services.common.kafka_topics import (
    TopicLayout,
    TopicMismatch,
    TopicReport,
    _compare,
    _known_brokers,
    wanted_layout,
)
from services.common.producer import KafkaProducer
from shared.settings import BaseServiceSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("brokers", "replication", "min_insync"),
    [(1, 1, 1), (2, 2, 1), (3, 3, 2), (4, 3, 2), (9, 3, 2)],
)
def test_the_default_follows_the_cluster(brokers: int, replication: int, min_insync: int) -> None:
    assert wanted_layout(brokers, 6) == TopicLayout(6, replication, min_insync)


def test_settings_override_the_default() -> None:
    assert wanted_layout(5, 12, replication=5, min_insync=3) == TopicLayout(12, 5, 3)
    # Replication set, min ISR left to the rule: it follows the replication, not the brokers.
    assert wanted_layout(5, 6, replication=2) == TopicLayout(6, 2, 1)
    assert wanted_layout(1, 6, min_insync=1) == TopicLayout(6, 1, 1)


def test_an_impossible_min_insync_is_reported() -> None:
    report = TopicReport(wanted_layout(1, 6, min_insync=2), brokers=1)
    assert report.problems == [
        "min.insync.replicas 2 is more than the replication factor 1: "
        "no acks=all write can ever succeed"
    ]


@pytest.mark.parametrize("value", [None, "", "auto", "AUTO"])
def test_auto_or_unset_follows_the_cluster(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    for name in ("KAFKA_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS"):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    settings = BaseServiceSettings()
    assert settings.kafka_replication_factor is None
    assert settings.kafka_min_insync_replicas is None


def test_numbers_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("KAFKA_MIN_INSYNC_REPLICAS", "2")
    settings = BaseServiceSettings()
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "0")
    with pytest.raises(ValidationError):
        BaseServiceSettings()


def _topic(name: str, replicas: list[list[int]]) -> dict[str, object]:
    partitions = [
        {"partition": index, "leader": ids[0], "replicas": ids, "isr": ids}
        for index, ids in enumerate(replicas)
    ]
    return {"topic": name, "error_code": 0, "partitions": partitions}


def test_every_differing_setting_is_named() -> None:
    wanted = TopicLayout(partitions=3, replication=3, min_insync=2)
    good = _topic("good", [[1, 2, 3], [2, 3, 1], [3, 1, 2]])
    # One partition with fewer replicas is enough: that partition loses data first.
    thin = _topic("thin", [[1, 2, 3], [2], [3, 1, 2]])
    small = _topic("small", [[1], [2]])
    found = _compare([good, thin, small], {"good": 2, "thin": 2, "small": 1}, wanted)
    assert found == [
        TopicMismatch("thin", "replication factor", 1, 3),
        TopicMismatch("small", "partitions", 2, 3),
        TopicMismatch("small", "replication factor", 1, 3),
        TopicMismatch("small", "min.insync.replicas", 1, 2),
    ]
    assert str(found[0]) == "topic thin: replication factor is 1, wanted 3"
    report = TopicReport(wanted, 3, mismatches=found, missing=["gone"])
    assert report.differing == {"thin", "small", "gone"}
    assert report.problems[0] == "topic gone: missing"


def test_a_broker_that_is_down_still_counts() -> None:
    # Metadata lists live brokers only; broker 3 is down but holds replicas.
    metadata = {
        "brokers": [{"node_id": 1}, {"node_id": 2}],
        "topics": [_topic("__consumer_offsets", [[1, 2, 3]])],
    }
    assert _known_brokers(metadata) == 3
    assert wanted_layout(_known_brokers(metadata), 6).replication == 3


def test_producers_wait_for_every_in_sync_replica() -> None:
    options = KafkaProducer("127.0.0.1:1", "test")._options
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is True


def test_every_bootstrap_server_reaches_the_subscribers() -> None:
    # FastStream passes a string on as one host: "a:1,b:2" must reach it as two (the
    # cluster tests in tests/resilience/test_kafka_cluster.py prove egress then connects).
    assert bootstrap_list("127.0.0.1:1, 127.0.0.1:2,") == ["127.0.0.1:1", "127.0.0.1:2"]
