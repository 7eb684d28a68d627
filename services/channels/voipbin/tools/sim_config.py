"""Where a simulated call finds the system and the fake, who calls, and how long it waits."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.channels.voipbin.tools.setup import DEFAULT_FLOW_NAME
from services.channels.voipbin.tools.sim_support import fake_root


@dataclass(frozen=True)
class CallSimulation:
    """Where the system and the fake are, who calls, and how long to wait."""

    ingress_url: str
    api_base: str
    access_key: str = field(repr=False)
    fetch_token: str = field(repr=False)
    caller: str = "+15551234567"
    flow_name: str = DEFAULT_FLOW_NAME
    turn_timeout_s: float = 20.0
    quiet_s: float = 1.5
    poll_s: float = 0.25
    session_timeout_s: float = 10.0
    fetch_timeout_s: float = 600.0
    listen_max_s: float = 12.0
    """Longest the caller keeps listening after the last line (egress waits up to 10 s for a
    goodbye to be heard before it hangs up)."""

    @property
    def fake_root(self) -> str:
        return fake_root(self.api_base)
