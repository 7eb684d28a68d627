"""Listing and replaying dead letters against a real Kafka and Redis.

Letters are parked with the real `DeadLetterPublisher`, as egress does, then listed and
replayed to their source topics with `services.tools.dead_letters`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from redis.asyncio import Redis

from services.common.deadletter import DeadLetterPublisher
from services.common.kafka import ensure_topics
from services.common.ops import OpsEmitter
from services.common.producer import KafkaProducer
from services.tools import dead_letters
from services.tools.dead_letters import (
    MARKER_TTL_S,
    UNREADABLE_REASON,
    Action,
    ForeignTopicError,
    StoredLetter,
    marker_key,
    read_dead_letters,
    replay_dead_letters,
)
from shared.contracts import Channel, Stage
from shared.settings import BaseServiceSettings
from tests.support.infra import Infra
from tests.support.kafka import read_headers, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PARTITIONS = 2
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SMS_PAYLOAD = {"reply_id": "r-sms-1", "conversation_id": "conv-sms", "text": "Your order shipped"}
CHAT_PAYLOAD = {"reply_id": "r-chat-1", "conversation_id": "conv-chat", "text": "Hi there"}


@dataclass
class Parked:
    """A namespace whose replies DLQ holds two letters with different reasons."""

    settings: BaseServiceSettings
    dlq: str
    sms_topic: str
    chat_topic: str


def source_record(
    topic: str, offset: int, key: str, payload: dict[str, str], headers: dict[str, str]
) -> ConsumerRecord[bytes, bytes]:
    """A record as egress would have consumed it from `topic`."""
    value = json.dumps(payload).encode()
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=[(name, text.encode()) for name, text in headers.items()],
    )


async def park(
    settings: BaseServiceSettings, *letters: tuple[ConsumerRecord[bytes, bytes], str, str]
) -> None:
    """Park (record, reason, error) letters on the replies DLQ with the real publisher."""
    producer = KafkaProducer(settings.kafka_bootstrap_servers, "dlq-test")
    await producer.start()
    try:
        ops = OpsEmitter(producer, settings.topics.ops, Stage.EGRESS, "egress-test")
        publisher = DeadLetterPublisher(producer, settings.topics.dlq_replies, Stage.EGRESS, ops)
        for record, reason, error in letters:
            await publisher.park(record, reason, error, attempts=3)
    finally:
        await producer.stop()


async def read_records(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` now (publishes were acknowledged, so nothing is in flight)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(30):
            while len(records) < sum(end.values()):
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
        return records
    finally:
        await consumer.stop()


def by_reason(letters: list[StoredLetter], reason: str) -> StoredLetter:
    [match] = [item for item in letters if item.reason == reason]
    return match


@pytest_asyncio.fixture
async def parked(infra: Infra, namespace: str) -> Parked:
    settings = BaseServiceSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
    )
    topics = settings.topics
    await ensure_topics(
        settings.kafka_bootstrap_servers, topics.all([Channel.CHAT, Channel.SMS]), PARTITIONS
    )
    sms_topic, chat_topic = topics.replies(Channel.SMS), topics.replies(Channel.CHAT)
    sms_headers = {"content-type": "application/json", "sb-event": "Reply"}
    await park(
        settings,
        (
            source_record(
                sms_topic, 7, "conv-sms", SMS_PAYLOAD, {**sms_headers, "traceparent": TRACEPARENT}
            ),
            "provider_rejected",
            "provider answered 400 (invalid number)",
        ),
        (
            source_record(chat_topic, 3, "conv-chat", CHAT_PAYLOAD, {"sb-event": "Reply"}),
            "invalid_event",
            "reply_id missing",
        ),
    )
    return Parked(settings, topics.dlq_replies, sms_topic, chat_topic)


async def test_list_returns_every_letter_with_its_reason_and_origin(parked: Parked) -> None:
    letters = await read_dead_letters(parked.settings.kafka_bootstrap_servers, parked.dlq)

    assert sorted(item.reason for item in letters) == ["invalid_event", "provider_rejected"]
    sms = by_reason(letters, "provider_rejected")
    assert sms.letter is not None
    assert sms.dlq_topic == parked.dlq
    assert sms.parse_error is None
    assert (sms.letter.source_topic, sms.letter.partition, sms.letter.offset) == (
        parked.sms_topic,
        0,
        7,
    )
    assert sms.letter.key == "conv-sms"
    assert json.loads(sms.letter.payload) == SMS_PAYLOAD
    assert sms.letter.attempts == 3
    chat = by_reason(letters, "invalid_event")
    assert chat.letter is not None
    assert chat.letter.source_topic == parked.chat_topic
    assert chat.letter.error == "reply_id missing"
    # Each letter carries its own DLQ position, and positions are distinct and real.
    positions = {item.position for item in letters}
    assert len(positions) == 2
    dlq_records = await read_records(parked.settings.kafka_bootstrap_servers, parked.dlq)
    assert positions == {(record.partition, record.offset) for record in dlq_records}


async def test_replay_by_reason_republishes_exactly_the_original_record(
    parked: Parked, redis: Redis
) -> None:
    bootstrap = parked.settings.kafka_bootstrap_servers
    sms = by_reason(await read_dead_letters(bootstrap, parked.dlq), "provider_rejected")

    report = await replay_dead_letters(parked.settings, "replies", reason="provider_rejected")

    assert (report.replayed, report.skipped_already_replayed) == (1, 0)
    assert (report.skipped_filtered, report.unreadable) == (1, 0)
    assert (sms.position, "provider_rejected", parked.sms_topic, Action.REPLAYED) in report.rows
    values = await read_topic(bootstrap, parked.sms_topic, until=lambda events: len(events) >= 1)
    assert values == [SMS_PAYLOAD]
    [headers] = await read_headers(bootstrap, parked.sms_topic, count=1)
    assert headers == {
        "content-type": "application/json",
        "sb-event": "Reply",
        "traceparent": TRACEPARENT,
        "sb-replayed-from": f"{parked.dlq}:{sms.dlq_partition}:{sms.dlq_offset}",
    }
    [record] = await read_records(bootstrap, parked.sms_topic)
    assert record.key == b"conv-sms"
    assert await read_records(bootstrap, parked.chat_topic) == []
    marker = marker_key(parked.settings.redis_prefix, sms)
    assert marker == (
        f"{parked.settings.redis_prefix}:dlq:replayed:{parked.dlq}:"
        f"{sms.dlq_partition}:{sms.dlq_offset}"
    )
    replayed_at = datetime.fromisoformat(await redis.get(marker))
    assert abs(datetime.now(UTC) - replayed_at) < timedelta(minutes=1)
    assert MARKER_TTL_S - 60 <= await redis.ttl(marker) <= MARKER_TTL_S


async def test_a_second_replay_skips_and_force_replays_again(parked: Parked, redis: Redis) -> None:
    bootstrap = parked.settings.kafka_bootstrap_servers
    await replay_dead_letters(parked.settings, "replies", reason="provider_rejected")
    sms = by_reason(await read_dead_letters(bootstrap, parked.dlq), "provider_rejected")
    first_marker = await redis.get(marker_key(parked.settings.redis_prefix, sms))

    again = await replay_dead_letters(parked.settings, "replies", reason="provider_rejected")

    assert (again.replayed, again.skipped_already_replayed) == (0, 1)
    assert [row.action for row in again.rows if row.position == sms.position] == [
        Action.ALREADY_REPLAYED
    ]
    assert len(await read_records(bootstrap, parked.sms_topic)) == 1

    forced = await replay_dead_letters(
        parked.settings, "replies", reason="provider_rejected", force=True
    )

    assert (forced.replayed, forced.skipped_already_replayed) == (1, 0)
    assert [row.action for row in forced.rows if row.position == sms.position] == [
        Action.REPLAYED_AGAIN
    ]
    records = await read_records(bootstrap, parked.sms_topic)
    assert [json.loads(record.value) for record in records] == [SMS_PAYLOAD, SMS_PAYLOAD]
    assert {record.key for record in records} == {b"conv-sms"}
    # The marker keeps the time of the first replay.
    assert await redis.get(marker_key(parked.settings.redis_prefix, sms)) == first_marker


async def test_dry_run_publishes_nothing_and_sets_no_marker(parked: Parked, redis: Redis) -> None:
    bootstrap = parked.settings.kafka_bootstrap_servers
    letters = await read_dead_letters(bootstrap, parked.dlq)

    report = await replay_dead_letters(parked.settings, "replies", dry_run=True)

    assert report.dry_run is True
    assert (report.replayed, report.skipped_already_replayed, report.skipped_filtered) == (2, 0, 0)
    assert {row.action for row in report.rows} == {Action.WOULD_REPLAY}
    assert {row.source_topic for row in report.rows} == {parked.sms_topic, parked.chat_topic}
    assert await read_records(bootstrap, parked.sms_topic) == []
    assert await read_records(bootstrap, parked.chat_topic) == []
    for item in letters:
        assert await redis.exists(marker_key(parked.settings.redis_prefix, item)) == 0


async def test_replay_by_position_replays_only_that_letter(parked: Parked) -> None:
    bootstrap = parked.settings.kafka_bootstrap_servers
    chat = by_reason(await read_dead_letters(bootstrap, parked.dlq), "invalid_event")

    report = await replay_dead_letters(parked.settings, "replies", positions={chat.position})

    assert (report.replayed, report.skipped_filtered) == (1, 1)
    [record] = await read_records(bootstrap, parked.chat_topic)
    assert (record.key, json.loads(record.value)) == (b"conv-chat", CHAT_PAYLOAD)
    assert await read_records(bootstrap, parked.sms_topic) == []


async def test_a_source_topic_outside_the_namespace_is_refused(
    parked: Parked, redis: Redis
) -> None:
    bootstrap = parked.settings.kafka_bootstrap_servers
    foreign_topic = f"other{parked.settings.topic_namespace}.reply.sms.v1"
    await park(
        parked.settings,
        (source_record(foreign_topic, 1, "conv-x", SMS_PAYLOAD, {}), "foreign", "elsewhere"),
    )
    letters = await read_dead_letters(bootstrap, parked.dlq)

    with pytest.raises(ForeignTopicError, match=foreign_topic) as refused:
        await replay_dead_letters(parked.settings, "replies")

    assert isinstance(refused.value, ValueError)
    assert "nothing was replayed" in str(refused.value)
    # Refused before anything was published or marked, even the letters of this namespace.
    assert await read_records(bootstrap, parked.sms_topic) == []
    assert await read_records(bootstrap, parked.chat_topic) == []
    for item in letters:
        assert await redis.exists(marker_key(parked.settings.redis_prefix, item)) == 0
    # Leaving it out of the selection replays the others.
    report = await replay_dead_letters(parked.settings, "replies", reason="provider_rejected")
    assert report.replayed == 1


async def test_an_unreadable_record_is_reported_not_fatal(parked: Parked) -> None:
    bootstrap = parked.settings.kafka_bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(parked.dlq, b"not json, secret customer text")
    finally:
        await producer.stop()

    letters = await read_dead_letters(bootstrap, parked.dlq)

    broken = by_reason(letters, UNREADABLE_REASON)
    assert broken.position == (meta.partition, meta.offset)
    assert broken.letter is None
    assert broken.parse_error is not None
    assert broken.parse_error.startswith("not a DeadLetter")
    assert "secret customer text" not in broken.parse_error
    report = await replay_dead_letters(parked.settings, "replies")
    assert (report.replayed, report.unreadable) == (2, 1)
    assert [row.action for row in report.rows if row.position == broken.position] == [
        Action.UNREADABLE
    ]


# --- command line --------------------------------------------------------------------------


@pytest.fixture
def cli_env(parked: Parked, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point `BaseServiceSettings()` at the parked namespace; leave logging alone."""
    settings = parked.settings
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("SWITCHBOARD_TOPIC_NAMESPACE", settings.topic_namespace)
    monkeypatch.setenv("SWITCHBOARD_REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setattr(dead_letters, "configure_logging", lambda *_: None)


async def cli(*argv: str) -> int:
    """Run the tool as the CLI would (in a thread: `run` starts its own event loop)."""
    parser = argparse.ArgumentParser()
    dead_letters.add_arguments(parser)
    return await asyncio.to_thread(dead_letters.run, parser.parse_args(argv))


@pytest.mark.usefixtures("cli_env")
async def test_cli_list_prints_ids_and_reasons_but_no_payload(
    parked: Parked, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("list") == 0

    out = capsys.readouterr().out
    assert "provider_rejected" in out
    assert "invalid_event" in out
    assert "conv-sms" in out
    assert parked.sms_topic in out
    assert "provider answered 400 (invalid number)" in out
    assert f"2 dead letter(s) on {parked.dlq}: " in out
    assert "provider_rejected 1" in out
    assert "invalid_event 1" in out
    assert "Your order shipped" not in out
    assert "Hi there" not in out


@pytest.mark.usefixtures("cli_env")
async def test_cli_replay_exit_codes(parked: Parked, capsys: pytest.CaptureFixture[str]) -> None:
    bootstrap = parked.settings.kafka_bootstrap_servers

    assert await cli("replay", "--reason", "no_such_reason") == 1
    assert "nothing matched" in capsys.readouterr().out
    assert await cli("replay", "--at", "zero:1") == 2
    assert "PARTITION:OFFSET" in capsys.readouterr().err
    assert await cli("list", "--force") == 2
    assert await read_records(bootstrap, parked.sms_topic) == []

    assert await cli("replay", "--reason", "invalid_event") == 0

    out = capsys.readouterr().out
    assert "replayed 1" in out
    assert "Hi there" not in out
    [record] = await read_records(bootstrap, parked.chat_topic)
    assert json.loads(record.value) == CHAT_PAYLOAD
