"""The whole system as real processes: ingress, brain and egress against the real broker and
Redis, the brain talking to the fake OpenAI-compatible server, egress to the fake Twilio and
the fake VoIPBin, all over HTTP. Ingress's port is chosen up front: it is the public URL Twilio
signs and posts status callbacks to, and where the fake VoIPBin sends its events."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.channels.sms.fake import FakeTwilioConfig, FakeTwilioServer
from services.channels.voipbin.fake import FakeVoipbinConfig, FakeVoipbinServer
from services.channels.voipbin.settings import EVENTS_PATH, fetch_url
from services.fakes.openai_server import FakeModelConfig, FakeOpenAIServer
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, free_port


@dataclass
class Stack:
    env: dict[str, str]
    model: FakeOpenAIServer
    twilio: FakeTwilioServer
    voipbin: FakeVoipbinServer
    log_dir: Path
    ingress_port: int
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self, name: str) -> ServiceProcess:
        port = self.ingress_port if name == "ingress" else None
        process = ServiceProcess(name, self.env, self.log_dir, port=port).start()
        self.services[name] = process
        return process

    @property
    def ingress_url(self) -> str:
        return self.services["ingress"].url

    @property
    def fetch_url(self) -> str:
        """The URL of the flow's `fetch` action (token included)."""
        return fetch_url(self.env["PUBLIC_BASE_URL"], self.env["VOIPBIN_FETCH_TOKEN"])

    def stop_all(self) -> None:
        for process in self.services.values():
            process.stop()


def stack_env(
    infra: Infra,
    namespace: str,
    model: FakeOpenAIServer,
    twilio: FakeTwilioServer | None = None,
    ingress_port: int | None = None,
    voipbin: FakeVoipbinServer | None = None,
) -> dict[str, str]:
    """Environment of every service process of one isolated deployment."""
    voice = {}
    if voipbin is not None:
        voice = {
            "VOIPBIN_API_BASE": voipbin.api_base,
            "VOIPBIN_ACCESS_KEY": voipbin.access_key,
            "VOIPBIN_WEBHOOK_SECRET": voipbin.webhook_secret or "",
            "VOIPBIN_FETCH_TOKEN": "e2e-fetch-token-" + "f" * 20,
            # Calls in tests are short: a hangup waits at most this long for speech to end.
            "EGRESS_VOICE_HANGUP_WAIT_MAX_S": "1",
        }
    sms = {}
    if twilio is not None and ingress_port is not None:
        sms = {
            "TWILIO_API_BASE": twilio.base_url,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{ingress_port}",
        }
    return {
        **sms,
        **voice,
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


@contextlib.contextmanager
def running_stack(
    infra: Infra, namespace: str, log_dir: Path, **env_overrides: str
) -> Iterator[Stack]:
    """Every service as a process, with the fakes, against `infra`; all stopped on exit."""
    model = FakeOpenAIServer(FakeModelConfig(api_key="test-key")).start()
    twilio = FakeTwilioServer(
        FakeTwilioConfig(account_sid="AC" + "e2e0" * 8, auth_token="e2e-twilio-token")
    ).start()
    voipbin = FakeVoipbinServer(FakeVoipbinConfig(webhook_retry_delay_ms=200)).start()
    ingress_port = free_port()
    env = {**stack_env(infra, namespace, model, twilio, ingress_port, voipbin), **env_overrides}
    voipbin.set_webhook(f"http://127.0.0.1:{ingress_port}{EVENTS_PATH}")
    deployment = Stack(
        env=env,
        model=model,
        twilio=twilio,
        voipbin=voipbin,
        log_dir=log_dir,
        ingress_port=ingress_port,
    )
    try:
        for name in ("ingress", "brain", "egress"):
            deployment.start(name)
        yield deployment
    finally:
        deployment.stop_all()
        voipbin.stop()
        twilio.stop()
        model.stop()


@pytest.fixture
def stack(infra: Infra, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    """A fresh, isolated deployment (own topics and Redis keys) for one test."""
    with running_stack(infra, namespace, tmp_path) as deployment:
        yield deployment
