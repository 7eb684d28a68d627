"""Web chat under load while Redis restarts: ingress, brain and egress as real processes
against a private Redis (restarting the shared one would break other tests) and the shared
Kafka broker.

The restart is a real one: SIGTERM (Redis saves its data file), a pause with the port closed,
then a start that spends a few seconds loading the file, answering `LOADING` to everything
(redis-py `BusyLoadingError`). Meanwhile chat sessions keep talking like the page does: resend
the same id after `unavailable`, and now and then reload (close the socket, open a new one),
which runs the connect-time holder claim and outbox drain during the outage.

Promises checked: no socket dies (every close is the client's own), ingress logs no
"Exception in ASGI application", every acknowledged message is answered exactly once (one
distinct reply id), and the inbox reader reports the outage once, not per retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.e2e.conftest import chat_services
from tests.support.chat import new_session
from tests.support.chat_load import Session, talk
from tests.support.infra import Infra
from tests.support.private_redis import PrivateRedis
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.resilience, pytest.mark.asyncio]

SESSIONS = 15
BALLAST_KEYS = 6_000
LOAD_DELAY_US = 500
"""About 3 s of `LOADING` on start."""


@dataclass
class Deployment:
    redis: PrivateRedis
    services: dict[str, ServiceProcess]

    @property
    def ingress(self) -> ServiceProcess:
        return self.services["ingress"]


@pytest.fixture
def deployment(infra: Infra, namespace: str, tmp_path: Path) -> Iterator[Deployment]:
    redis = PrivateRedis(load_delay_us=LOAD_DELAY_US).fresh()
    redis.start()
    try:
        with chat_services(infra, redis.url, namespace, tmp_path) as (services, _env):
            yield Deployment(redis, services)
    finally:
        redis.stop()


async def watch_loading(redis: PrivateRedis, seen: list[str], stop: asyncio.Event) -> None:
    """Record what a Redis client sees during the restart (proof the window happened)."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(_ping, redis)
            seen.append("ok")
        except BusyLoadingError:
            seen.append("loading")
        except RedisConnectionError:
            seen.append("down")
        await asyncio.sleep(0.05)


def _ping(redis: PrivateRedis) -> None:
    with redis.client() as client:
        client.ping()


async def test_chat_survives_a_redis_restart_under_load(deployment: Deployment) -> None:
    redis = deployment.redis
    redis.add_ballast(BALLAST_KEYS)
    base_url = deployment.ingress.url
    sessions = [
        Session(base_url, (await new_session(base_url))["token"], f"s{n}") for n in range(SESSIONS)
    ]
    stop_talking, stop_watching = asyncio.Event(), asyncio.Event()
    talkers = [asyncio.create_task(talk(session, stop_talking)) for session in sessions]
    seen: list[str] = []
    watcher = asyncio.create_task(watch_loading(redis, seen, stop_watching))
    try:
        await asyncio.sleep(3)  # load is running
        await asyncio.to_thread(redis.stop)
        await asyncio.sleep(2)  # Redis down: connection refused
        await asyncio.to_thread(redis.start, False)  # loading: BusyLoadingError
        await asyncio.to_thread(redis.wait_loaded)
        await asyncio.sleep(6)  # and back to normal under load
    finally:
        stop_talking.set()
        results = await asyncio.gather(*talkers, return_exceptions=True)
        stop_watching.set()
        await watcher

    log = deployment.ingress.log_path.read_text(errors="replace")
    deaths = [death for session in sessions for death in session.deaths]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert "loading" in seen and "down" in seen, f"no restart window observed: {set(seen)}"
    assert not deaths, f"sockets died: {deaths}"
    assert not errors, f"sessions failed: {errors!r}"
    assert "Exception in ASGI application" not in log
    assert "Traceback" not in log

    # The outage reached the chat paths, and clients got `unavailable` instead of dead sockets.
    unavailable = sum(s.unavailable + s.connect_unavailable for s in sessions)
    assert unavailable > 0, "no chat request met the outage: the test proved nothing"

    acked = {message_id for s in sessions for message_id in s.acked}
    assert len(acked) >= SESSIONS * 3
    for session in sessions:
        unanswered = session.acked - session.replies.keys()
        assert not unanswered, f"{session.name}: acked but never answered: {sorted(unanswered)}"
        answered_twice = {m: r for m, r in session.replies.items() if len(r) != 1}
        assert not answered_twice, f"{session.name}: answered more than once: {answered_twice}"
        assert session.replies.keys() <= session.acked, "a reply for a message never acked"

    # The inbox reader logs the outage once when it starts and once when it ends.
    events = [_event(line) for line in log.splitlines()]
    inbox = [e for e in events if e.get("dependency") == "redis.inbox"]
    started = [e for e in inbox if e.get("event") == "dependency.unavailable"]
    ended = [e for e in inbox if e.get("event") == "dependency.restored"]
    assert 1 <= len(started) <= 2, started
    assert len(ended) == len(started), ended


def _event(line: str) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        value = json.loads(line)
        if isinstance(value, dict):
            return value
    return {}
