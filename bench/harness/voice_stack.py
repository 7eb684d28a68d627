"""The deployment the voice benchmark drives: ingress, brain and egress as processes, the
fake model in its own process, and the fake VoIPBin inside the bench process.

The fake VoIPBin runs in a thread of the bench process (`FakeVoipbinServer`) so that the
`at` of its speech log (`time.monotonic()` when a `say` was carried out) is on the same
clock as the bench's "transcript posted" instant. `WatchedState` adds one thing to the
fake's state: it wakes the bench's waiters when speech is recorded for a call, so the bench
does not poll. The fake model (`bench.harness.timed_fake`) runs apart, like a real
provider, and its timings are on the same machine-wide monotonic clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from bench.harness import procs
from bench.harness.infra import Infra
from bench.harness.service_stack import ServiceStack, service_children
from bench.harness.sms_common import service_env
from services.channels.voipbin.fake import FakeVoipbinConfig, FakeVoipbinServer, FakeVoipbinState
from services.channels.voipbin.settings import EVENTS_PATH, fetch_url
from tests.support.processes import free_port

API_KEY = "bench-key"
FETCH_TOKEN = "bench-fetch-token-" + "0123456789abcdef" * 2


class SpeechWatch:
    """Wakes coroutines on the bench's loop when the fake records speech for a call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: dict[str, asyncio.Event] = {}

    def event(self, call_id: str) -> asyncio.Event:
        """The call's event (set on each say/flush/stop/talk); call from the bench's loop."""
        return self._events.setdefault(call_id, asyncio.Event())

    def forget(self, call_id: str) -> None:
        self._events.pop(call_id, None)

    def notify(self, call_id: str) -> None:
        """From the fake's thread: wake whoever waits for this call."""
        self._loop.call_soon_threadsafe(self._wake, call_id)

    def _wake(self, call_id: str) -> None:
        event = self._events.get(call_id)
        if event is not None:
            event.set()


class WatchedState(FakeVoipbinState):
    """The fake's state, telling a `SpeechWatch` about every speech operation."""

    def __init__(self, config: FakeVoipbinConfig, watch: SpeechWatch) -> None:
        super().__init__(config)
        self._watch = watch

    def speak(
        self, speaking_id: str, op: Literal["say", "flush", "stop"], text: str = ""
    ) -> dict[str, Any]:
        speaking = super().speak(speaking_id, op, text)
        self._watch.notify(str(speaking["reference_id"]))
        return speaking

    def talk(self, call_id: str, option: dict[str, str]) -> None:
        super().talk(call_id, option)
        self._watch.notify(call_id)


@dataclass
class VoiceStack(ServiceStack):
    """Everything one benchmark run talks to."""

    fake: FakeVoipbinServer
    watch: SpeechWatch

    METRICS: ClassVar[tuple[str, ...]] = (
        "switchboard_voipbin_fetches_total",
        "switchboard_voipbin_events_total",
        "switchboard_voice_spoken_total",
        "switchboard_voice_errors_total",
    )
    BENCH_ROLE: ClassVar[str] = "bench (client + fake VoIPBin)"

    @property
    def events_url(self) -> str:
        return self.ingress_url + EVENTS_PATH

    @property
    def fetch_url(self) -> str:
        return fetch_url(self.ingress_url, FETCH_TOKEN)

    @property
    def webhook_secret(self) -> str:
        secret = self.fake.webhook_secret
        assert secret is not None, "the fake signs events"
        return secret

    def stop(self) -> None:
        super().stop()
        self.fake.stop()


def start(infra: Infra, namespace: str, log_dir: Path) -> VoiceStack:
    """Start the fake VoIPBin, the fake model and the three services; wait until all are ready.

    Call from the bench's event loop (the speech watch wakes coroutines on it).
    """
    watch = SpeechWatch(asyncio.get_running_loop())
    fake = FakeVoipbinServer()
    fake.state = WatchedState(fake.state.config, watch)
    fake.start()
    model_port = free_port()
    model_argv = [procs.PYTHON, "-m", "bench.harness.timed_fake", "--port", str(model_port)]
    model_argv += ["--api-key", API_KEY]
    model = procs.Child("fake-openai", model_argv, {}, log_dir, model_port, "/v1/models")
    ingress_port = free_port()
    env = _env(infra, namespace, fake, model, f"http://127.0.0.1:{ingress_port}")
    ingress_argv = [procs.SWITCHBOARD, "ingress", "--port", str(ingress_port)]
    ingress = procs.Child("ingress", ingress_argv, env, log_dir, ingress_port)
    services = service_children(env, log_dir, ingress)
    stack = VoiceStack(model, services, fake, watch)
    stack.start()
    return stack


def _env(
    infra: Infra,
    namespace: str,
    fake: FakeVoipbinServer,
    model: procs.Child,
    public_base_url: str,
) -> dict[str, str]:
    return service_env(infra, namespace) | {
        "PUBLIC_BASE_URL": public_base_url,
        "VOIPBIN_API_BASE": fake.api_base,
        "VOIPBIN_ACCESS_KEY": fake.access_key,
        "VOIPBIN_WEBHOOK_SECRET": fake.webhook_secret or "",
        "VOIPBIN_FETCH_TOKEN": FETCH_TOKEN,
        "BRAIN_ENGINE": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": model.url + "/v1",
        "OPENAI_MODEL": "fake-model",
    }
