"""Entry points of the call driver: an inbound (or web) call, and answering an outbound one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from services.channels.vapi.fake.driver import CallDriver
from services.channels.vapi.fake.errors import ApiError
from services.channels.vapi.fake.result import CallResult, Line
from services.channels.vapi.fake.signing import ServerAuth
from services.channels.vapi.fake.state import FakeVapiState
from services.channels.vapi.fake.target import CallTarget


async def drive_call(
    state: FakeVapiState,
    number: str | None,
    lines: Sequence[str | Line] = (),
    *,
    target: CallTarget | None = None,
    interrupt_after_chars: int | None = None,
    linger_s: float = 1.0,
    speech_updates: bool = False,
    call_id: str | None = None,
) -> CallResult:
    """Play one call to the end and return what happened.

    ``number`` is the caller (None: a web call, no number). ``call_id`` answers an outbound
    call created by ``POST /call`` instead: its customer is the one who speaks ``lines``.
    """
    if call_id is not None:
        found = state.find("call", call_id)
        live = state.live(call_id)
        if found is None or live is None or live.ended_reason is not None:
            raise ApiError(404, "Call not found or already over")
    async with httpx.AsyncClient() as http:
        driver = CallDriver(
            state,
            target or CallTarget(),
            http,
            lines=lines,
            number=number,
            call_type="webCall" if number is None and call_id is None else "inboundPhoneCall",
            interrupt_after_chars=interrupt_after_chars,
            linger_s=linger_s,
            speech_updates=speech_updates,
            existing_call_id=call_id,
        )
        return await driver.run()


def _line(item: Any) -> str | Line:
    if isinstance(item, dict):
        limit = item.get("interrupt_after_chars")
        return Line(str(item.get("text", "")), int(limit) if limit is not None else None)
    return str(item)


def call_options(body: dict[str, Any]) -> dict[str, Any]:
    """:func:`drive_call` keyword arguments from a ``POST /_fake/calls`` body:
    ``{"number", "web", "lines": ["..." | {"text", "interrupt_after_chars"}],
    "interrupt_after_chars", "linger_s", "speech_updates", "call_id", "server_url",
    "auth": {ServerAuth fields}, "llm_url", "llm_key", "phone_number_id",
    "assistant_request_timeout_s", "llm_timeout_s", "turn_timeout_s"}``."""
    auth = body.get("auth")
    timeouts = {
        k: float(body[k])
        for k in ("assistant_request_timeout_s", "llm_timeout_s", "turn_timeout_s")
        if k in body
    }
    target = CallTarget(
        server_url=str(body.get("server_url") or ""),
        auth=ServerAuth(**auth) if isinstance(auth, dict) else None,
        llm_url=str(body.get("llm_url") or ""),
        llm_key=str(body["llm_key"]) if body.get("llm_key") is not None else None,
        phone_number_id=str(body.get("phone_number_id") or ""),
        **timeouts,
    )
    number = None if body.get("web") else str(body.get("number") or "+15551234567")
    limit = body.get("interrupt_after_chars")
    return {
        "number": number,
        "lines": [_line(item) for item in body.get("lines") or []],
        "target": target,
        "interrupt_after_chars": int(limit) if limit is not None else None,
        "linger_s": float(body.get("linger_s", 1.0)),
        "speech_updates": bool(body.get("speech_updates", False)),
        "call_id": str(body["call_id"]) if body.get("call_id") else None,
    }
