"""Call objects as VAPI shows them (REST, server messages, custom-LLM requests)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from services.channels.vapi.fake.state import FakeVapiState, now_iso

CallType = Literal["inboundPhoneCall", "outboundPhoneCall", "webCall"]


def control_url(state: FakeVapiState, call_id: str) -> str:
    """The call's Live Call Control URL (``call.monitor.controlUrl``), served by the fake."""
    return f"{state.control_base}/control/{call_id}"


def new_call(
    state: FakeVapiState,
    call_type: CallType,
    *,
    number: str | None = None,
    phone_number_id: str | None = None,
    assistant_id: str | None = None,
    assistant: dict[str, Any] | None = None,
    status: str = "ringing",
) -> dict[str, Any]:
    """A fresh call object (not stored: :meth:`FakeVapiState.start_live` stores it)."""
    call_id = str(uuid.uuid4())
    base = state.control_base
    listen = base.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    stamp = now_iso()
    call: dict[str, Any] = {
        "id": call_id,
        "orgId": state.config.org_id,
        "type": call_type,
        "status": status,
        "createdAt": stamp,
        "updatedAt": stamp,
        "monitor": {
            "listenUrl": f"{listen}/listen/{call_id}",
            "controlUrl": control_url(state, call_id),
        },
    }
    if call_type != "webCall":
        call |= {"phoneCallProvider": "vapi", "phoneCallTransport": "pstn"}
        call["phoneCallProviderId"] = uuid.uuid4().hex
    else:
        call["webCallUrl"] = f"https://vapi.daily.co/{uuid.uuid4().hex[:20]}"
    if number:
        call["customer"] = {"number": number}
    if phone_number_id:
        call["phoneNumberId"] = phone_number_id
    if assistant_id:
        call["assistantId"] = assistant_id
    if assistant is not None:
        call["assistant"] = assistant
    return call


def control_auth_of(assistant: dict[str, Any] | None) -> bool:
    """Whether the assistant's calls want the public key on their control URL."""
    plan = (assistant or {}).get("monitorPlan")
    return isinstance(plan, dict) and plan.get("controlAuthenticationEnabled") is True
