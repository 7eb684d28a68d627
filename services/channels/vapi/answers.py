"""Answers to the server-URL messages that expect one and change nothing on our side
(providers.md §3.3): Switchboard runs no VAPI tools (the brain answers through the custom
LLM), so each tool call is answered with an error string in the exact shape VAPI waits for,
and a transfer goes to `VAPI_HANDOFF_NUMBER` when one is configured."""

from __future__ import annotations

from typing import Any

from services.channels.vapi.payloads import VapiMessage
from services.channels.vapi.settings import VapiSettings

TOOL_ERROR = "No tools run on this server: Switchboard answers through its custom LLM."
FUNCTION_RESULT = "Functions are not available on this assistant."
NO_HANDOFF = "No transfer destination is configured."


def answer_for(message: VapiMessage, settings: VapiSettings) -> dict[str, Any] | None:
    """The answer to `message`, or None when its type is not one of these."""
    if message.type == "tool-calls":
        # Every call is answered (`toolCallId` and `name` both, `error` a string), or VAPI
        # would wait for it.
        results = [
            {"toolCallId": call.id, "name": call.name, "error": TOOL_ERROR}
            for call in message.tool_calls
        ]
        return {"results": results}
    if message.type == "function-call":  # the legacy form: `result` is a string
        return {"result": FUNCTION_RESULT}
    if message.type in ("handoff-destination-request", "transfer-destination-request"):
        if not settings.handoff_number:
            return {"error": NO_HANDOFF}
        number = settings.handoff_number
        return {"destination": {"type": "number", "number": number, "message": ""}}
    return None
