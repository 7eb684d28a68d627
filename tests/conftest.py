"""Shared fixtures. Broker-backed fixtures provision a real Kafka and Redis on first use."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

import shared.logs
from services.common.redis import make_redis
from tests.support.infra import Infra, provision, teardown
from tests.support.logging_state import logging_config_restored

# Commands run in-process by some tests configure logging; loggers must stay uncached after
# that, or the log-capturing tests that follow them see nothing (see shared.logs).
shared.logs.CACHE_LOGGERS = False


@pytest.fixture(autouse=True)
def _logging_config_restored() -> Iterator[None]:
    """A command run in-process (`cli.main`) configures logging for the whole process: put it
    back after every test, so a later test's log capture sees the lines it expects whatever
    ran before it."""
    with logging_config_restored():
        yield


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """The real Kafka broker and Redis server of this test session."""
    started = provision()
    yield started
    teardown(started)


@pytest.fixture
def namespace() -> str:
    """A fresh topic namespace / Redis prefix, so tests never see each other's data."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture
async def redis(infra: Infra) -> AsyncIterator[Redis]:
    """A client of the session's Redis: one node, or the cluster under TEST_REDIS_CLUSTER=1."""
    client = make_redis(infra.redis_url)
    yield client
    await client.aclose()
