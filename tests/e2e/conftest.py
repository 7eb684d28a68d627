"""The whole system as real processes: ingress, brain and egress against the real broker and
Redis, the brain talking to the fake OpenAI-compatible server, egress to the fake Twilio and
the fake VoIPBin, all over HTTP; the fake VAPI runs beside them (its calls are driven by the
tests, its control URLs reached by egress). Ingress's port is chosen up front: it is the public
URL Twilio signs and posts status callbacks to, where the fake VoIPBin sends its events, and
what VAPI is given as server URL and custom-LLM URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.channels.sms.fake import FakeTwilioConfig, FakeTwilioServer
from services.channels.vapi.fake import FakeVapiConfig, FakeVapiServer
from services.channels.voipbin.fake import FakeVoipbinConfig, FakeVoipbinServer
from services.channels.voipbin.settings import EVENTS_PATH, fetch_url
from services.fakes.openai_server import FakeModelConfig, FakeOpenAIServer
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, free_port

# Not the development defaults, so a test proves the configured secrets are the ones used.
VAPI_SERVER_SECRET = "e2e-vapi-server-secret-5c81d2"
VAPI_LLM_KEY = "e2e-vapi-llm-key-93fa07"
VAPI_PRIVATE_KEY = "e2e-vapi-private-key-1e6b"
VAPI_PUBLIC_KEY = "e2e-vapi-public-key-7d20"


@dataclass
class Stack:
    env: dict[str, str]
    model: FakeOpenAIServer
    twilio: FakeTwilioServer
    voipbin: FakeVoipbinServer
    vapi: FakeVapiServer
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
    vapi: FakeVapiServer | None = None,
) -> dict[str, str]:
    """Environment of every service process of one isolated deployment."""
    public = {}
    if ingress_port is not None:
        public = {"PUBLIC_BASE_URL": f"http://127.0.0.1:{ingress_port}"}
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
        }
    vapi_env = {}
    if vapi is not None:
        vapi_env = {
            "VAPI_API_BASE": vapi.base_url,
            "VAPI_API_KEY": vapi.private_key,
            "VAPI_PUBLIC_KEY": vapi.public_key,
            "VAPI_AUTH_MODE": "secret",
            "VAPI_SERVER_SECRET": VAPI_SERVER_SECRET,
            "VAPI_LLM_KEY": VAPI_LLM_KEY,
        }
    return {
        **public,
        **sms,
        **voice,
        **vapi_env,
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
    # Control URLs want the public key: egress must send it (VAPI_PUBLIC_KEY).
    vapi = FakeVapiServer(
        FakeVapiConfig(
            private_key=SecretStr(VAPI_PRIVATE_KEY),
            public_key=SecretStr(VAPI_PUBLIC_KEY),
            control_auth_required=True,
        )
    ).start()
    ingress_port = free_port()
    env = {
        **stack_env(infra, namespace, model, twilio, ingress_port, voipbin, vapi),
        **env_overrides,
    }
    voipbin.set_webhook(f"http://127.0.0.1:{ingress_port}{EVENTS_PATH}")
    deployment = Stack(
        env=env,
        model=model,
        twilio=twilio,
        voipbin=voipbin,
        vapi=vapi,
        log_dir=log_dir,
        ingress_port=ingress_port,
    )
    try:
        for name in ("ingress", "brain", "egress"):
            deployment.start(name)
        yield deployment
    finally:
        deployment.stop_all()
        vapi.stop()
        voipbin.stop()
        twilio.stop()
        model.stop()


@pytest.fixture
def stack(infra: Infra, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    """A fresh, isolated deployment (own topics and Redis keys) for one test."""
    with running_stack(infra, namespace, tmp_path) as deployment:
        yield deployment


@contextlib.contextmanager
def chat_services(
    infra: Infra, redis_url: str, namespace: str, log_dir: Path
) -> Iterator[tuple[dict[str, ServiceProcess], dict[str, str]]]:
    """Ingress, brain and egress as processes on `infra`'s Kafka and the Redis at `redis_url`
    (a test's own server or cluster), with a fake model answering in 50 ms; no provider
    fakes. Yields the processes by name and their environment; all stopped on exit."""
    model = FakeOpenAIServer(FakeModelConfig(api_key="test-key", latency_ms=50)).start()
    env = stack_env(Infra(infra.kafka_bootstrap_servers, redis_url, started=[]), namespace, model)
    services: dict[str, ServiceProcess] = {}
    try:
        services["ingress"] = ServiceProcess("ingress", env, log_dir, port=free_port()).start()
        for name in ("brain", "egress"):
            services[name] = ServiceProcess(name, env, log_dir).start()
        yield services, env
    finally:
        for process in services.values():
            process.stop()
        model.stop()
