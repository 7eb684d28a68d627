"""The ``fetch`` action driver: ask a server for actions as VoIPBin does, check the reply."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from services.channels.voipbin.fake.actions import validate_action_array
from services.channels.voipbin.fake.wire import go_json


@dataclass(frozen=True)
class FetchResult:
    """What a ``fetch`` action got back: status, timing, parsed actions, problems found."""

    url: str
    method: str
    request_body: dict[str, str]
    status_code: int | None
    elapsed_s: float
    actions: list[Any] | None
    errors: list[str] = field(default_factory=list)
    body: str = ""

    @property
    def ok(self) -> bool:
        """Whether VoIPBin would accept the reply and run the actions."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, with ``ok``."""
        return asdict(self) | {"ok": self.ok}


def fetch_actions(
    url: str,
    *,
    method: str = "POST",
    activeflow_id: str | None = None,
    reference_id: str | None = None,
    timeout: float | None = None,
) -> FetchResult:
    """Perform a ``fetch`` action as VoIPBin does and check the reply (never raises for it).

    ``reference_id`` is the call id for a call's activeflow. ``timeout=None`` waits forever,
    like VoIPBin's bare Go ``http.Client``; give one to bound a test.
    """
    request_body = {
        "activeflow_id": activeflow_id or str(uuid.uuid4()),
        "reference_id": reference_id or str(uuid.uuid4()),
    }
    headers = {"Content-Type": "application/json; charset=utf-8"}
    method = method.upper()
    start = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            response = client.request(method, url, content=go_json(request_body), headers=headers)
    except httpx.HTTPError as exc:
        error = f"request failed: {type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - start
        return FetchResult(url, method, request_body, None, elapsed, None, [error])
    elapsed = time.perf_counter() - start
    actions, errors = _check_fetch_reply(response)
    return FetchResult(
        url, method, request_body, response.status_code, elapsed, actions, errors, response.text
    )


def _check_fetch_reply(response: httpx.Response) -> tuple[list[Any] | None, list[str]]:
    errors: list[str] = []
    if response.status_code != 200:
        errors.append(
            f"HTTP {response.status_code}: VoIPBin needs exactly 200 and stops the flow otherwise"
        )
    try:
        payload = json.loads(response.content)
    except ValueError:
        return None, [*errors, "the body is not JSON: VoIPBin stops the flow"]
    errors.extend(validate_action_array(payload))
    return (payload if isinstance(payload, list) else None), errors
