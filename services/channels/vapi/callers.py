"""Which call and which customer a VAPI message is about.

Every server-URL message and every custom-LLM request (with `metadataSendMode` `variable`,
the default) carries the `call` object: its `id` keys our state, `customer.number` is the
caller (an E.164 number joins the phone realm shared with SMS and VoIPBin), and
`monitor.controlUrl` is where Live Call Control messages go. A web call has no number: it
gets a conversation of its own, as a withheld number does on VoIPBin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.channels.vapi.profile import NAME
from services.channels.vapi.store import VapiCalls

CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""VAPI call ids are UUIDs; anything outside this is refused, never used as a Redis key."""


@dataclass(frozen=True)
class CallRef:
    """The parts of VAPI's `call` object Switchboard uses."""

    call_id: str
    number: str = ""
    control_url: str = ""


def call_ref(call: Any) -> CallRef | None:
    """The call a message is about; None when it names no usable call id."""
    if not isinstance(call, Mapping):
        return None
    call_id = call.get("id")
    if not isinstance(call_id, str) or not CALL_ID.fullmatch(call_id):
        return None
    customer = call.get("customer")
    number = customer.get("number") if isinstance(customer, Mapping) else None
    monitor = call.get("monitor")
    control = monitor.get("controlUrl") if isinstance(monitor, Mapping) else None
    return CallRef(
        call_id=call_id,
        number=number if isinstance(number, str) and len(number) <= 64 else "",
        control_url=control if isinstance(control, str) and len(control) <= 2048 else "",
    )


async def conversation_of(identity: Any, calls: VapiCalls, ref: CallRef) -> str:
    """The conversation of the call, resolved once and kept in the call's record.

    `identity` is the ingress `IdentityResolver` (its `resolve_caller` puts a phone number
    in the shared phone realm, honouring explicit links).
    """
    record = await calls.get(ref.call_id)
    if record.conversation_id:
        if ref.control_url and not record.control_url:
            await calls.remember(ref.call_id, control_url=ref.control_url)
        return record.conversation_id
    caller, conversation_id = await identity.resolve_caller(ref.number, ref.call_id, NAME)
    await calls.remember(
        ref.call_id,
        conversation_id=conversation_id,
        caller=caller,
        control_url=ref.control_url,
    )
    return str(conversation_id)
