"""The part every process-based benchmark stack shares: the fake model and the service
processes, their pids, the model's own records, the services' counters, stopping them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from bench.harness import procs
from bench.harness.infra import Infra
from bench.harness.timed_fake import REQUESTS_PATH

_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+)$")


@dataclass
class ServiceStack:
    """The fake model and the `switchboard` processes of one benchmark run."""

    model: procs.Child
    services: dict[str, procs.Child]

    METRICS: ClassVar[tuple[str, ...]] = ()
    """Counters scraped from the services' `/metrics` before and after each phase."""
    BENCH_ROLE: ClassVar[str] = "bench"
    """What the bench process plays, for the CPU table."""

    @property
    def ingress_url(self) -> str:
        return self.services["ingress"].url

    def pids(self, infra: Infra) -> dict[str, int | None]:
        return {
            **{name: child.pid for name, child in self.services.items()},
            "fake-model": self.model.pid,
            **infra.server_pids(),
            self.BENCH_ROLE: os.getpid(),
        }

    async def set_model_latency(self, http: aiohttp.ClientSession, latency_ms: int) -> None:
        async with http.post(self.model.url + "/_fake/config", json={"latency_ms": latency_ms}):
            pass

    async def model_requests(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        """Every chat completion the fake model served: `{"user", "start", "end",
        "first_token"}` (monotonic seconds)."""
        async with http.get(self.model.url + REQUESTS_PATH) as response:
            found: list[dict[str, Any]] = await response.json()
            return found

    async def counters(self, http: aiohttp.ClientSession) -> dict[str, float]:
        """The `METRICS` counters of every service, as `service:name{labels}` → value."""
        values: dict[str, float] = {}
        for name, child in self.services.items():
            async with http.get(child.url + "/metrics") as response:
                text = await response.text()
            for line in text.splitlines():
                match = _SAMPLE.match(line)
                if match and match.group(1) in self.METRICS:
                    values[f"{name}:{match.group(1)}{match.group(2) or ''}"] = float(match[3])
        return values

    def start(self) -> None:
        """Start the model and the services together, then wait until all are ready; stop
        everything again if one of them fails."""
        try:
            self.model.start()
            for child in self.services.values():
                child.start()
            self.model.wait_ready()
            for child in self.services.values():
                child.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for child in self.services.values():
            child.stop()
        self.model.stop()


def service_children(
    env: dict[str, str], log_dir: Path, ingress: procs.Child
) -> dict[str, procs.Child]:
    """ingress (as given), then `switchboard brain` and `switchboard egress`."""
    return {
        "ingress": ingress,
        "brain": procs.service("brain", env, log_dir),
        "egress": procs.service("egress", env, log_dir),
    }
