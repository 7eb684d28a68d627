"""Topics as the deployment wants them: created with the right partition count, replication
factor and `min.insync.replicas`, and existing topics that differ reported.

A topic that already exists is never changed here. Adding partitions moves keys to other
partitions (and so breaks order per conversation for messages in flight); changing the
replication factor is a reassignment that moves data between brokers. Both are decisions
for an operator, so the service says what differs (a warning at start, a line from
`switchboard topics create`, a failing `switchboard topics check`) and carries on.

The default rule (docs/kafka-cluster.md): replication min(3, brokers) and
`min.insync.replicas` 2 once a topic has 3 or more replicas, else 1. With producers on
`acks=all`, a write is acknowledged once that many replicas hold it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from shared.logs import get_logger

log = get_logger("kafka.topics")

MIN_INSYNC = "min.insync.replicas"


@dataclass(frozen=True)
class TopicLayout:
    """How every topic of the deployment should look."""

    partitions: int
    replication: int
    min_insync: int

    def __str__(self) -> str:
        return (
            f"partitions {self.partitions}, replication factor {self.replication}, "
            f"{MIN_INSYNC} {self.min_insync}"
        )


def wanted_layout(
    brokers: int, partitions: int, replication: int | None = None, min_insync: int | None = None
) -> TopicLayout:
    """The layout for a cluster of `brokers`; `None` for a setting means "follow the cluster".

    Replication defaults to min(3, brokers): three copies survive one broker lost and one in
    maintenance; more only costs. Min ISR defaults to 2 from 3 replicas on (a write is on two
    brokers before it is acknowledged, and one broker may be down without stopping writes),
    else 1 (with 2 replicas, min ISR 2 would stop every write while either broker is down).
    """
    factor = replication if replication is not None else max(1, min(3, brokers))
    insync = min_insync if min_insync is not None else (2 if factor >= 3 else 1)
    return TopicLayout(partitions, factor, insync)


@dataclass(frozen=True)
class TopicMismatch:
    """One setting of an existing topic that differs from the wanted layout."""

    topic: str
    setting: str
    actual: int
    wanted: int

    def __str__(self) -> str:
        return f"topic {self.topic}: {self.setting} is {self.actual}, wanted {self.wanted}"


@dataclass
class TopicReport:
    """What `ensure_topics` found and did."""

    layout: TopicLayout
    brokers: int
    created: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatches: list[TopicMismatch] = field(default_factory=list)

    @property
    def differing(self) -> set[str]:
        """Names of the topics that are missing or differ."""
        return {*self.missing, *(mismatch.topic for mismatch in self.mismatches)}

    @property
    def problems(self) -> list[str]:
        """Human-readable lines for everything that is not as wanted, settings included."""
        lines = [f"topic {name}: missing" for name in self.missing]
        lines += [str(mismatch) for mismatch in self.mismatches]
        if self.layout.min_insync > self.layout.replication:
            lines.append(
                f"{MIN_INSYNC} {self.layout.min_insync} is more than the replication factor "
                f"{self.layout.replication}: no acks=all write can ever succeed"
            )
        return lines


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    partitions: int,
    replication: int | None = None,
    min_insync: int | None = None,
    *,
    create: bool = True,
) -> TopicReport:
    """Create the missing topics with the wanted layout and report existing ones that differ.

    Idempotent; safe when several instances start at once. `replication` / `min_insync`
    `None` follow the cluster (see `wanted_layout`). With `create=False` nothing is created:
    missing topics are only reported. Raises a `KafkaError` when Kafka refuses a creation
    (for example a replication factor above the brokers that are up), so start-up retries.
    """
    names = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000)
    await admin.start()
    try:
        metadata = (await admin._get_cluster_metadata(None)).to_object()
        brokers = _known_brokers(metadata)
        layout = wanted_layout(brokers, partitions, replication, min_insync)
        existing = {t["topic"]: t for t in metadata["topics"] if t["error_code"] == 0}
        report = TopicReport(layout, brokers)
        absent = [name for name in names if name not in existing]
        if create and absent:
            report.created = await _create(admin, absent, layout)
            # Created meanwhile by someone else (or not yet in this broker's metadata):
            # compare those too, they may be anything.
            raced = [name for name in absent if name not in report.created]
            existing.update(await _describe_when_visible(admin, raced))
        elif absent:
            report.missing = absent
        present = [existing[name] for name in names if name in existing]
        if present:
            insync = await _min_insync(admin, [t["topic"] for t in present])
            report.mismatches = _compare(present, insync, layout)
    finally:
        await admin.close()
    _log(report)
    return report


async def _describe_when_visible(
    admin: AIOKafkaAdminClient, names: list[str], attempts: int = 20
) -> dict[str, Any]:
    """Metadata of topics that exist, waiting (briefly) until the broker asked lists them:
    a broker's metadata cache may lag a creation made through another broker."""
    found: dict[str, Any] = {}
    for _ in range(attempts if names else 0):
        described = await admin.describe_topics([n for n in names if n not in found])
        found.update({t["topic"]: t for t in described if t["error_code"] == 0})
        if len(found) == len(names):
            break
        await asyncio.sleep(0.25)
    return found


def _known_brokers(metadata: dict[str, Any]) -> int:
    """Brokers of the cluster: the live ones, and any that holds a replica of a topic.

    Metadata lists only live brokers; counting replica holders too keeps one broker that is
    down at start from turning the default replication of 3 into 2.
    """
    ids = {broker["node_id"] for broker in metadata["brokers"]}
    for topic in metadata["topics"]:
        for partition in topic.get("partitions", []):
            ids.update(partition["replicas"])
    return len(ids)


async def _create(admin: AIOKafkaAdminClient, names: list[str], layout: TopicLayout) -> list[str]:
    response = await admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=layout.partitions,
                replication_factor=layout.replication,
                topic_configs={MIN_INSYNC: str(layout.min_insync)},
            )
            for name in names
        ]
    )
    created = []
    for result in response.topic_errors:
        name, code = result[0], result[1]
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:
            # Another instance creating it between our look and our create is fine; any other
            # refusal (too few brokers up for the replication factor, a bad setting) is not.
            raise for_code(code)(f"creating topic {name}: {result[2] if len(result) > 2 else ''}")
    if created:
        log.info(
            "kafka.topics.created",
            topics=created,
            partitions=layout.partitions,
            replication=layout.replication,
            min_insync=layout.min_insync,
        )
    return created


async def _min_insync(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, {MIN_INSYNC: None}) for name in names]
    )
    values: dict[str, int] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                if entry["config_names"] == MIN_INSYNC and entry["config_value"] is not None:
                    values[resource["resource_name"]] = int(entry["config_value"])
    return values


def _compare(
    topics: list[dict[str, Any]], insync: dict[str, int], layout: TopicLayout
) -> list[TopicMismatch]:
    mismatches = []
    for topic in topics:
        name, partitions = topic["topic"], topic["partitions"]
        if len(partitions) != layout.partitions:
            mismatches.append(TopicMismatch(name, "partitions", len(partitions), layout.partitions))
        # The smallest replica set counts: that partition is the one that loses data first.
        factor = min((len(p["replicas"]) for p in partitions), default=0)
        if factor != layout.replication:
            mismatches.append(TopicMismatch(name, "replication factor", factor, layout.replication))
        actual = insync.get(name)
        if actual is not None and actual != layout.min_insync:
            mismatches.append(TopicMismatch(name, MIN_INSYNC, actual, layout.min_insync))
    return mismatches


def _log(report: TopicReport) -> None:
    for mismatch in report.mismatches:
        log.warning(
            "kafka.topic.mismatch",
            topic=mismatch.topic,
            setting=mismatch.setting,
            actual=mismatch.actual,
            wanted=mismatch.wanted,
        )
    if report.layout.min_insync > report.layout.replication:
        log.error(
            "kafka.topics.unsatisfiable",
            replication=report.layout.replication,
            min_insync=report.layout.min_insync,
        )
