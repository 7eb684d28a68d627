"""VAPI server-URL messages as VAPI sends them (providers.md §3.1-3.2), for the events tests
and the hostile-input registry, with the fields the endpoint reads (for generated cases)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.support.hostile import MARKER, JsonField

CALLER = "+14155550123"
OUR_NUMBER = "+15005550006"


def call(call_id: str | None = None, number: str = CALLER) -> dict[str, Any]:
    """A VAPI `call` object of an inbound phone call."""
    call_id = call_id or str(uuid.uuid4())
    socket = f"phone-call-websocket.aws-us-west-2-backend-production1.vapi.ai/{call_id}"
    return {
        "id": call_id,
        "orgId": str(uuid.uuid4()),
        "type": "inboundPhoneCall",
        "status": "in-progress",
        "phoneNumberId": str(uuid.uuid4()),
        "customer": {"number": number},
        "monitor": {
            "listenUrl": f"wss://{socket}/listen",
            "controlUrl": f"https://{socket}/control",
        },
        "createdAt": "2026-08-20T10:00:00.000Z",
    }


def message(
    message_type: str,
    the_call: dict[str, Any] | None = None,
    *,
    timestamp: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """`{"message": {...}}` of one type about `the_call` (a fresh call when None)."""
    body: dict[str, Any] = {
        "type": message_type,
        "timestamp": timestamp if timestamp is not None else int(time.time() * 1000),
        "call": the_call if the_call is not None else call(),
        "phoneNumber": {"id": str(uuid.uuid4()), "number": OUR_NUMBER},
        "customer": {"number": CALLER},
        **fields,
    }
    return {"message": body}


def status_update(status: str, the_call: dict[str, Any] | None = None, **fields: Any) -> Any:
    return message("status-update", the_call, status=status, **fields)


def end_of_call_report(the_call: dict[str, Any], reason: str = "customer-ended-call") -> Any:
    return message(
        "end-of-call-report",
        the_call,
        endedReason=reason,
        artifact={"transcript": f"User: {MARKER} bye", "messages": []},
        analysis={"summary": "short call"},
    )


def tool_calls(the_call: dict[str, Any] | None = None) -> Any:
    """A `tool-calls` message with each tool call shape VAPI is known to send."""
    listed = [
        # The schema's shape: arguments as a JSON string.
        {
            "id": "call_schema",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"order": "A1"}'},
        },
        # Doc examples: arguments as an object, or `name` and `parameters` at the top.
        {"id": "call_object", "type": "function", "function": {"name": "x", "arguments": {}}},
        {"id": "call_doc", "name": "check_weather", "parameters": {"city": MARKER}},
    ]
    return message(
        "tool-calls",
        the_call,
        toolCallList=listed,
        toolWithToolCallList=[{"type": "function", "toolCall": item} for item in listed],
    )


ENVELOPE_FIELDS: dict[tuple[str | int, ...], JsonField] = {
    ("message",): JsonField("object", required=True),
    ("message", "type"): JsonField("str", required=True),
    ("message", "call"): JsonField("object"),
    ("message", "call", "id"): JsonField("id"),
    ("message", "phoneNumber"): JsonField("object"),
    ("message", "status"): JsonField("str"),
}
"""What the endpoint reads of every message (the timestamp may be a number or a string)."""
