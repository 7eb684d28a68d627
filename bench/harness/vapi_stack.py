"""The deployment the VAPI benchmark drives: ingress, brain and egress as processes and the
timed fake model in its own process. The bench itself plays VAPI (`bench.harness.vapi_calls`).

No fake VAPI server runs: the custom-LLM answers go back on the held request itself, and
nothing in the measured calls makes egress use a call's control URL (no goodbye, no `say`
outside a stream). Each call names a control URL on a port nothing listens on, so a control
message egress did send would show up as a warning in its log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bench.harness import procs
from bench.harness.infra import Infra
from bench.harness.service_stack import ServiceStack, service_children
from bench.harness.sms_common import service_env
from services.channels.vapi.settings import EVENTS_PATH, LLM_BASE_PATH, VapiSettings
from tests.support.processes import free_port

API_KEY = "bench-key"
SERVER_SECRET = "bench-vapi-server-secret-" + "0123456789abcdef" * 2
LLM_KEY = "bench-vapi-llm-key-" + "fedcba9876543210" * 2
AUTH_MODE = "hmac"
"""The server URL's auth mode: HMAC over the raw body with a timestamp, the mode with the
most work per request."""


@dataclass
class VapiStack(ServiceStack):
    """Everything one benchmark run talks to."""

    METRICS: ClassVar[tuple[str, ...]] = (
        "switchboard_vapi_events_total",
        "switchboard_vapi_llm_requests_total",
        "switchboard_vapi_control_total",
    )
    BENCH_ROLE: ClassVar[str] = "bench (VAPI's side)"

    @property
    def events_url(self) -> str:
        return self.ingress_url + EVENTS_PATH

    @property
    def llm_base(self) -> str:
        return self.ingress_url + LLM_BASE_PATH

    def settings(self) -> VapiSettings:
        """The VAPI settings the services run with (to sign as VAPI would)."""
        return vapi_settings(self.ingress_url)


def vapi_settings(public_base_url: str) -> VapiSettings:
    return VapiSettings(
        auth_mode=AUTH_MODE,
        server_secret=SERVER_SECRET,
        llm_key=LLM_KEY,
        public_base_url=public_base_url,
    )


def start(infra: Infra, namespace: str, log_dir: Path, stream_direct: bool = True) -> VapiStack:
    """Start the fake model and the three services on free ports (the kernel's ephemeral
    range, clear of the dev and test ports); wait until all are ready. `stream_direct`:
    the brain's BRAIN_STREAM_DIRECT."""
    model_port = free_port()
    model_argv = [procs.PYTHON, "-m", "bench.harness.timed_fake", "--port", str(model_port)]
    model_argv += ["--api-key", API_KEY]
    model = procs.Child("fake-openai", model_argv, {}, log_dir, model_port, "/v1/models")
    ingress_port = free_port()
    env = _env(infra, namespace, model, f"http://127.0.0.1:{ingress_port}")
    env["BRAIN_STREAM_DIRECT"] = "true" if stream_direct else "false"
    ingress_argv = [procs.SWITCHBOARD, "ingress", "--port", str(ingress_port)]
    ingress = procs.Child("ingress", ingress_argv, env, log_dir, ingress_port)
    services = service_children(env, log_dir, ingress)
    stack = VapiStack(model, services)
    stack.start()
    return stack


def _env(infra: Infra, namespace: str, model: procs.Child, public_base_url: str) -> dict[str, str]:
    return service_env(infra, namespace) | {
        "PUBLIC_BASE_URL": public_base_url,
        "VAPI_AUTH_MODE": AUTH_MODE,
        "VAPI_SERVER_SECRET": SERVER_SECRET,
        "VAPI_LLM_KEY": LLM_KEY,
        "BRAIN_ENGINE": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": model.url + "/v1",
        "OPENAI_MODEL": "fake-model",
    }
