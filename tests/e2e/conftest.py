"""The whole system as real processes: ingress, brain and egress against the real broker and
Redis, the brain talking to the fake OpenAI-compatible server over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.fakes.openai_server import FakeModelConfig, FakeOpenAIServer
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess


@dataclass
class Stack:
    env: dict[str, str]
    model: FakeOpenAIServer
    log_dir: Path
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self, name: str) -> ServiceProcess:
        process = ServiceProcess(name, self.env, self.log_dir).start()
        self.services[name] = process
        return process

    @property
    def ingress_url(self) -> str:
        return self.services["ingress"].url

    def stop_all(self) -> None:
        for process in self.services.values():
            process.stop()


def stack_env(infra: Infra, namespace: str, model: FakeOpenAIServer) -> dict[str, str]:
    """Environment of every service process of one isolated deployment."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "REDIS_URL": infra.redis_url,
        "SWITCHBOARD_TOPIC_NAMESPACE": namespace,
        "SWITCHBOARD_REDIS_PREFIX": namespace,
        "SWITCHBOARD_TOPIC_PARTITIONS": "3",
        "BRAIN_ENGINE": "openai",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_MODEL": "fake-model",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def stack(infra: Infra, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    """A fresh, isolated deployment (own topics and Redis keys) for one test."""
    model = FakeOpenAIServer(FakeModelConfig(api_key="test-key")).start()
    env = stack_env(infra, namespace, model)
    deployment = Stack(env=env, model=model, log_dir=tmp_path)
    for name in ("ingress", "brain", "egress"):
        deployment.start(name)
    yield deployment
    deployment.stop_all()
    model.stop()
