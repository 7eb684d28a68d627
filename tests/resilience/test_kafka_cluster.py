"""Switchboard on a 3-broker Kafka cluster (replication 3, min ISR 2) under chat and SMS load,
with every service a real process (issue 14, Kafka).

- One broker is SIGKILLed mid-load, then restarted.
- The leadership of one broker is drained (partitions reassigned, preferred leaders
  elected), that broker is restarted as in a rolling upgrade, and the leaders are moved back.

Either way: nothing acknowledged is lost, nothing is answered twice, order holds per
conversation, and ingress keeps acknowledging while two brokers are in sync.

The cluster is this module's own (`KafkaCluster`, ports TEST_CLUSTER_KAFKA_PORT and up);
Redis is the session's.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.channels.registry import channel_names
from services.common.kafka import ensure_topics
from services.common.kafka_topics import TopicLayout, TopicMismatch
from shared.contracts import Channel
from shared.topics import Topics
from tests.e2e.conftest import Stack, running_stack
from tests.support.chat import new_session
from tests.support.infra import Infra
from tests.support.kafka_cluster import KafkaCluster, PartitionState
from tests.support.traffic import ChatSession, SmsPhone, assert_answered_once_in_order, merged

pytestmark = [pytest.mark.resilience, pytest.mark.asyncio, pytest.mark.timeout(600)]

CLUSTER_PORT = int(os.environ.get("TEST_CLUSTER_KAFKA_PORT", "27110"))
# The numbers: 1,000 chat messages and 300 texts in flight.
CHAT_SESSIONS, CHAT_MESSAGES = 20, int(os.environ.get("TEST_CLUSTER_CHAT_MESSAGES", "1000"))
PHONES, TEXTS = 30, int(os.environ.get("TEST_CLUSTER_SMS", "300"))
# Pacing spreads the load over about a minute, so the broker's loss, its absence and its
# return all happen while messages are in flight.
CHAT_PAUSE_S, SMS_PAUSE_S = 0.7, 4.0

States = dict[tuple[str, int], PartitionState]


@pytest.fixture(scope="module")
def cluster() -> Iterator[KafkaCluster]:
    nodes = KafkaCluster(CLUSTER_PORT, "cluster")
    nodes.destroy()  # fresh: no topics or groups from an earlier run
    nodes.start()
    yield nodes
    nodes.destroy()


@pytest.fixture
def cluster_stack(
    cluster: KafkaCluster, infra: Infra, namespace: str, tmp_path: Path
) -> Iterator[Stack]:
    on_cluster = Infra(cluster.bootstrap, infra.redis_url, [])
    with running_stack(
        on_cluster,
        namespace,
        tmp_path,
        SWITCHBOARD_TOPIC_PARTITIONS="6",  # two leaders per broker
        KAFKA_REPLICATION_FACTOR="3",
        KAFKA_MIN_INSYNC_REPLICAS="2",
        BRAIN_SMS_COLLECT_WINDOW_MS="300",
    ) as stack:
        yield stack


def fully_in_sync(states: States) -> bool:
    return all(len(s.isr) == len(s.replicas) == 3 and s.leader >= 0 for s in states.values())


class Load:
    """The issue's traffic: CHAT_MESSAGES over CHAT_SESSIONS browsers, TEXTS over PHONES."""

    def __init__(self, chats: list[ChatSession], phones: list[SmsPhone]) -> None:
        self.chats, self.phones = chats, phones
        self.tasks = [asyncio.create_task(c.run()) for c in chats] + [
            asyncio.create_task(p.run()) for p in phones
        ]

    @classmethod
    async def start(cls, stack: Stack) -> Load:
        chats = []
        for index in range(CHAT_SESSIONS):
            session = await new_session(stack.ingress_url)
            count = CHAT_MESSAGES // CHAT_SESSIONS
            chats.append(
                ChatSession(stack.ingress_url, session["token"], f"c{index}", count, CHAT_PAUSE_S)
            )
        phones = [
            SmsPhone(stack, f"+1415556{1000 + index:04d}", TEXTS // PHONES, SMS_PAUSE_S)
            for index in range(PHONES)
        ]
        return cls(chats, phones)

    def acked_share(self) -> float:
        return sum(len(c.acked) for c in self.chats) / CHAT_MESSAGES

    async def until_acked(self, share: float) -> None:
        while self.acked_share() < share:
            assert not any(t.done() and t.exception() for t in self.tasks), "a client failed"
            await asyncio.sleep(0.2)

    async def finish(self) -> None:
        await asyncio.gather(*self.tasks)
        assert sum(len(c.acked) for c in self.chats) == CHAT_MESSAGES
        assert sum(len(p.accepted) for p in self.phones) == TEXTS
        # Only `unavailable`/503 may refuse a message; any other answer is a bug (a broken
        # connection is the client's side and is only reported, in `summary`).
        assert merged(self.chats).other == []
        assert [status for status in merged(self.phones).other if status.isdigit()] == []

    def assert_acknowledged_throughout(self, start: float, end: float, what: str) -> None:
        """Ingress kept acknowledging in [start, end]: every browser got acknowledgements
        then (20 conversations, spread over the partitions and so over the brokers), texts
        were accepted, and nothing sent in the window was refused."""
        assert end - start >= 5, f"{what}: window too short to prove anything ({end - start:.1f} s)"
        for chat in self.chats:
            assert chat.outcomes.acked_at[-1] > end, f"{what}: the chat load ended too early"
            assert chat.outcomes.acked_between(start, end) > 0, f"{what}: {chat.name} got no ack"
        if any(p.outcomes.acked_at[-1] > end for p in self.phones):
            sms = merged(self.phones)
            assert sms.acked_between(start, end) > 0, f"{what}: no text accepted"
        clients = [*self.chats, *self.phones]
        refused = sum(c.outcomes.refused_sent_between(start, end) for c in clients)
        assert refused == 0, f"{what}: ingress refused {refused} messages sent then"

    def refused(self) -> int:
        return sum(len(c.outcomes.refused_sent_at) for c in [*self.chats, *self.phones])

    def summary(self) -> str:
        chat, sms = merged(self.chats), merged(self.phones)
        return (
            f"chat acked {len(chat.acked_at)}, refused {len(chat.refused_sent_at)}; "
            f"sms accepted {len(sms.acked_at)}, 503 {len(sms.refused_sent_at)}; "
            f"other {chat.other + sms.other}"
        )


async def test_topics_get_three_replicas_and_a_thin_topic_is_reported(
    cluster: KafkaCluster, namespace: str
) -> None:
    names = [f"{namespace}.auto"]
    report = await ensure_topics(cluster.bootstrap, names, 3)
    assert (report.brokers, report.layout) == (3, TopicLayout(3, 3, 2)), "the default rule"
    states = await cluster.partitions(names)
    assert all(len(s.replicas) == 3 for s in states.values())

    thin = f"{namespace}.thin"
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(thin, 3, 1)])
    finally:
        await admin.close()
    report = await ensure_topics(cluster.bootstrap, [*names, thin], 3)
    # Its min.insync.replicas is the broker default (2 on this cluster, see kafka.sh): as
    # wanted; its single replica is not.
    assert report.mismatches == [TopicMismatch(thin, "replication factor", 1, 3)]


async def test_a_broker_is_killed_and_restarted_under_load(
    cluster: KafkaCluster, cluster_stack: Stack, namespace: str
) -> None:
    stack, topics = cluster_stack, Topics(namespace)
    watched = [topics.inbound, topics.replies(Channel.CHAT), topics.replies(Channel.SMS)]
    await cluster.wait_until(watched, fully_in_sync, what="every replica in sync")
    report = await ensure_topics(cluster.bootstrap, topics.all(channel_names()), 6, create=False)
    assert report.layout == TopicLayout(6, 3, 2) and report.problems == []

    # The victim leads the one consumer-offsets partition: it is every group's coordinator
    # and leads a third of the partitions, so brain and egress lose both at once.
    [offsets] = (await cluster.partitions(["__consumer_offsets"])).values()
    victim = offsets.leader

    load = await Load.start(stack)
    await load.until_acked(0.2)
    killed_at, share_at_kill = time.monotonic(), load.acked_share()
    await asyncio.to_thread(cluster.kill, victim)

    # Fenced after broker.session.timeout.ms: new leaders, the victim out of every ISR.
    def two_in_sync(states: States) -> bool:
        return all(s.leader not in (victim, -1) and len(s.isr) == 2 for s in states.values())

    await cluster.wait_until(watched, two_in_sync, timeout_s=30, what="victim fenced")
    fenced_at = time.monotonic()
    await asyncio.sleep(10)  # degraded: two brokers in sync
    restarted_at = time.monotonic()
    await asyncio.to_thread(cluster.start_node, victim)
    await cluster.wait_until(watched, fully_in_sync, timeout_s=60, what="victim back in sync")
    back_at = time.monotonic()
    await load.finish()
    print(
        f"\nbroker {victim} killed at {share_at_kill:.0%} of the chat load: fenced after "
        f"{fenced_at - killed_at:.1f} s, down {restarted_at - killed_at:.1f} s, back in sync "
        f"{back_at - restarted_at:.1f} s after restart; {load.summary()}"
    )

    # Until the victim is fenced, publishes to the partitions it led wait (ingress waits up
    # to 10 s, then answers `unavailable` and the client resends): that gap is Kafka's
    # failure detection. Once two brokers are in sync, nothing may be refused.
    load.assert_acknowledged_throughout(fenced_at, restarted_at, "two brokers in sync")
    await assert_answered_once_in_order(stack, load.chats, load.phones)
    for process in stack.services.values():
        assert "Traceback" not in process.log_path.read_text(errors="replace")


async def test_a_brokers_leaders_are_drained_and_it_is_restarted_under_load(
    cluster: KafkaCluster, cluster_stack: Stack, namespace: str, tmp_path: Path
) -> None:
    stack, topics = cluster_stack, Topics(namespace)
    every = [*topics.all(channel_names()), "__consumer_offsets"]
    before = await cluster.wait_until(every, fully_in_sync, what="every replica in sync")
    drained = 1 + max(range(3), key=lambda i: sum(s.leader == i + 1 for s in before.values()))

    def drain_plan(states: States) -> dict[tuple[str, int], list[int]]:
        # The drained broker goes last in every replica list: it stays a follower (the data
        # keeps three copies) but is nobody's preferred leader.
        return {
            key: [*(r for r in s.replicas if r != drained), drained] for key, s in states.items()
        }

    async def move_replicas(plan: dict[tuple[str, int], list[int]], what: str) -> None:
        """Give every partition `plan`'s replica list, then elect its first replica leader."""
        await asyncio.to_thread(cluster.reassign, plan, tmp_path)
        await cluster.wait_until(
            every,
            lambda states: all(list(states[key].replicas) == ids for key, ids in plan.items()),
            what=f"replica lists {what}",
        )
        await asyncio.to_thread(cluster.elect_preferred_leaders, list(plan), tmp_path)

    load = await Load.start(stack)
    # Earlier than the kill test: Kafka's tools start a JVM per call, slow on a busy machine,
    # and the drain, the stop and the start must all happen while messages are in flight.
    await load.until_acked(0.1)
    drain_started = time.monotonic()
    await move_replicas(drain_plan(before), "reordered")
    await cluster.wait_until(
        every,
        lambda states: all(s.leader != drained for s in states.values()),
        what=f"broker {drained} leads nothing",
    )
    drained_at = time.monotonic()
    # Maintenance of the drained broker: a controlled stop and a start (a rolling restart).
    await asyncio.to_thread(cluster.stop_node, drained)
    await asyncio.sleep(5)  # down for a while: the two others carry everything
    restarting_at = time.monotonic()
    await asyncio.to_thread(cluster.start_node, drained)
    await cluster.wait_until(every, fully_in_sync, timeout_s=60, what="restarted broker in sync")
    # And its leaders back where they were.
    await move_replicas({key: list(s.replicas) for key, s in before.items()}, "restored")
    await cluster.wait_until(
        every,
        lambda states: all(states[key].leader == s.replicas[0] for key, s in before.items()),
        what="preferred leaders restored",
    )
    restored_at = time.monotonic()
    await load.finish()
    last_ack = max(merged([*load.chats]).acked_at + merged([*load.phones]).acked_at)
    print(
        f"\nbroker {drained} drained in {drained_at - drain_started:.1f} s, stopped and "
        f"restarted by {restarting_at - drain_started:.1f} s, leaders restored by "
        f"{restored_at - drain_started:.1f} s, last ack at {last_ack - drain_started:.1f} s; "
        f"{load.summary()}"
    )

    # Leadership moves and a controlled restart are planned events: nothing is refused.
    load.assert_acknowledged_throughout(drain_started, drained_at, "leaders moving away")
    load.assert_acknowledged_throughout(drained_at, restarting_at, "drained broker stopped")
    assert load.refused() == 0
    await assert_answered_once_in_order(stack, load.chats, load.phones)
    for process in stack.services.values():
        assert "Traceback" not in process.log_path.read_text(errors="replace")
