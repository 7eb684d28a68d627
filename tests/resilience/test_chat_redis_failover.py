"""Web chat under load while a Redis Cluster master dies: ingress, brain and egress as real
processes against a private cluster (3 masters, 1 replica each; the cluster lane's shared one
must keep its nodes) and the shared Kafka broker.

The master serving one session's outbox is SIGKILLed (no save, no goodbye); after the cluster's
node timeout its replica is promoted, and the services find the new master by themselves
(redis-py's cluster client refreshes its slot map on the connection errors). Sessions keep
talking like the page all along: resend the same id after `unavailable`, reload now and then.

Promises checked: every acknowledged message is answered, once (one distinct reply id), no
socket dies, ingress logs no "Exception in ASGI application". What asynchronous replication
could still lose in that window, and why this holds anyway, is in docs/redis-cluster.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.common.redis import hash_tag
from tests.e2e.conftest import chat_services
from tests.support.chat import new_session
from tests.support.chat_load import Session, talk
from tests.support.infra import Infra
from tests.support.private_cluster import PrivateCluster
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.resilience, pytest.mark.asyncio]

SESSIONS = 12


@dataclass
class Deployment:
    cluster: PrivateCluster
    services: dict[str, ServiceProcess]
    prefix: str

    @property
    def ingress(self) -> ServiceProcess:
        return self.services["ingress"]


@pytest.fixture
def deployment(infra: Infra, namespace: str, tmp_path: Path) -> Iterator[Deployment]:
    cluster = PrivateCluster().fresh()
    try:
        with chat_services(infra, cluster.url, namespace, tmp_path) as (services, env):
            yield Deployment(cluster, services, env["SWITCHBOARD_REDIS_PREFIX"])
    finally:
        cluster.stop()


async def test_chat_survives_a_master_failover_under_load(deployment: Deployment) -> None:
    cluster = deployment.cluster
    base_url = deployment.ingress.url
    opened = [await new_session(base_url) for _ in range(SESSIONS)]
    sessions = [Session(base_url, s["token"], f"s{n}") for n, s in enumerate(opened)]
    # The victim serves the first session's chat state (`services.channels.webchat.store`).
    victim = cluster.master_of(
        f"{deployment.prefix}:chat:outbox:{hash_tag(opened[0]['session_id'])}"
    )
    first = sessions[0]
    stop_talking = asyncio.Event()
    talkers = [asyncio.create_task(talk(session, stop_talking)) for session in sessions]
    try:
        await asyncio.sleep(3)  # load is running
        acked_before = sum(len(s.acked) for s in sessions)
        held_keys = cluster.key_count(victim.port)
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, victim.port)
        promoted = await asyncio.to_thread(cluster.wait_promoted, victim)
        print(f"replica promoted {time.monotonic() - killed_at:.1f} s after the kill")
        first_acked_at_promotion = set(first.acked)
        await asyncio.sleep(8)  # and on under load with the promoted replica
    finally:
        stop_talking.set()
        results = await asyncio.gather(*talkers, return_exceptions=True)

    assert promoted.port != victim.port
    # The dead master held the load's state, and the session whose state it held went on
    # talking with the promoted replica.
    assert held_keys > 0, "the killed master held no keys: the test proved nothing"
    assert first.acked - first_acked_at_promotion, "the victim's session stopped after failover"
    log = deployment.ingress.log_path.read_text(errors="replace")
    deaths = [death for session in sessions for death in session.deaths]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not deaths, f"sockets died: {deaths}"
    assert not errors, f"sessions failed: {errors!r}"
    assert "Exception in ASGI application" not in log
    assert "Traceback" not in log

    # Every service is ready again with the dead master gone (its replica promoted): the
    # lost node does not keep `/readyz` failing.
    for service in deployment.services.values():
        assert await ready_within(service.url, 15), f"{service.service} not ready after failover"

    acked = {message_id for s in sessions for message_id in s.acked}
    assert acked_before >= SESSIONS, "no load before the failover: the test proved nothing"
    assert len(acked) > acked_before, "nothing acknowledged after the failover"
    for session in sessions:
        unanswered = session.acked - session.replies.keys()
        assert not unanswered, f"{session.name}: acked but never answered: {sorted(unanswered)}"
        answered_twice = {m: r for m, r in session.replies.items() if len(r) != 1}
        assert not answered_twice, f"{session.name}: answered more than once: {answered_twice}"
        assert session.replies.keys() <= session.acked, "a reply for a message never acked"


async def ready_within(base_url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{base_url}/readyz")).status_code == 200:
                    return True
            await asyncio.sleep(0.5)
    return False
