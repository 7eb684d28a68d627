"""Which call, and which customer, a VoIPBin event or `fetch` request is about.

Events arrive out of order and a transcript names only its `transcribe_id`, so every lookup
goes to the shared call registry first and to VoIPBin's API when the registry does not know
yet (`GET /calls/{id}`, `GET /transcribes/{id}`), as providers.md §1.5 advises. Whatever the
API tells us is written back, so each call costs at most one lookup of each kind.
"""

from __future__ import annotations

from typing import Any

from services.common.voice_calls import CallRecord, CallRegistry
from services.common.voipbin import RetryPolicy, VoipbinClient, VoipbinError
from services.ingress.identity import IdentityResolver

LOOKUP_RETRY = RetryPolicy(max_attempts=2, base_s=0.1, cap_s=0.5, budget_s=2.0)
"""Lookups run while VoIPBin (or a caller) waits: retry once, briefly."""


class UnknownCall(Exception):
    """VoIPBin does not know the call or transcribe session (a business error, not a 5xx)."""


def customer_address(call: dict[str, Any]) -> str:
    """The customer's side of a call: the source of an incoming call, the destination of one
    we placed (`switchboard voipbin call`)."""
    side = "destination" if call.get("direction") == "outgoing" else "source"
    address = call.get(side) or {}
    return str(address.get("target") or "")


class CallResolver:
    """Resolves call ids to conversations, and transcribe sessions to calls."""

    def __init__(
        self, registry: CallRegistry, client: VoipbinClient, identity: IdentityResolver
    ) -> None:
        self.registry = registry
        self._client = client
        self._identity = identity

    async def record(self, call_id: str, call: dict[str, Any] | None = None) -> CallRecord:
        """The call's record with its conversation; `call` is the event's call data, if any."""
        known = await self.registry.get(call_id)
        if known is not None and known.conversation_id:
            return known
        if call is None:
            call = await self._lookup(self._client.get_call, call_id)
        target = customer_address(call)
        caller, conversation_id = await self._identity.resolve_caller(target, call_id)
        await self.registry.update(call_id, conversation_id=conversation_id, caller=caller)
        return CallRecord(
            call_id=call_id,
            conversation_id=conversation_id,
            caller=caller,
            speaking_id=known.speaking_id if known else "",
            transcribe_id=known.transcribe_id if known else "",
            ended=known.ended if known else False,
        )

    async def call_of_transcribe(self, transcribe_id: str) -> str:
        """The call a transcribe session belongs to (mapped by egress, an event, or the API)."""
        call_id = await self.registry.call_of_transcribe(transcribe_id)
        if call_id:
            return call_id
        transcribe = await self._lookup(self._client.get_transcribe, transcribe_id)
        if transcribe.get("reference_type") != "call" or not transcribe.get("reference_id"):
            raise UnknownCall("the transcribe session does not belong to a call")
        call_id = str(transcribe["reference_id"])
        await self.registry.map_transcribe(transcribe_id, call_id)
        return call_id

    async def _lookup(self, get: Any, resource_id: str) -> dict[str, Any]:
        try:
            return dict(await get(resource_id, retry=LOOKUP_RETRY))
        except VoipbinError as error:
            if error.retryable:
                raise
            raise UnknownCall(f"VoIPBin lookup refused: {error.reason}") from None
