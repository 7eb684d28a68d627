"""Which call, and which customer, a VoIPBin event or `fetch` request is about.

Events arrive out of order and a transcript names only its `transcribe_id`, so every lookup
goes to the shared call registry first and to VoIPBin's API when the registry does not know
yet (`GET /calls/{id}`, `GET /transcribes/{id}`), as providers.md §1.5 advises. Whatever the
API tells us is written back, so each call costs at most one lookup of each kind.

Webhook data arrives validated (`payloads.py`); what the API answers is checked here with the
same models, so a surprising answer is an unknown call, not a crash.
"""

from __future__ import annotations

from typing import Any, TypeVar

from services.channels.voipbin.client import VoipbinClient
from services.channels.voipbin.errors import VoipbinError
from services.channels.voipbin.inbound.payloads import (
    CallData,
    PayloadError,
    SessionData,
    validated,
)
from services.channels.voipbin.store import CallRecord, CallRegistry
from services.common.backoff import RetryPolicy
from services.ingress.identity import IdentityResolver

LOOKUP_RETRY = RetryPolicy(max_attempts=2, base_s=0.1, cap_s=0.5, budget_s=2.0)
"""Lookups run while VoIPBin (or a caller) waits: retry once, briefly."""

_Answer = TypeVar("_Answer", CallData, SessionData)


class UnknownCall(Exception):
    """VoIPBin does not know the call or transcribe session (a business error, not a 5xx)."""


class CallResolver:
    """Resolves call ids to conversations, and transcribe sessions to calls."""

    def __init__(
        self, registry: CallRegistry, client: VoipbinClient, identity: IdentityResolver
    ) -> None:
        self.registry = registry
        self._client = client
        self._identity = identity

    async def record(self, call_id: str, customer: str | None = None) -> CallRecord:
        """The call's record with its conversation; `customer` is the customer's address from
        the event's call data (`CallData.customer`), if there was an event."""
        known = await self.registry.get(call_id)
        if known is not None and known.conversation_id:
            return known
        if customer is None:
            call = await self._lookup(self._client.get_call, call_id)
            customer = self._checked(CallData, call).customer
        caller, conversation_id = await self._identity.resolve_caller(customer, call_id)
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
        session = self._checked(SessionData, transcribe)
        if session.reference_type != "call" or not session.reference_id:
            raise UnknownCall("the transcribe session does not belong to a call")
        await self.registry.map_transcribe(transcribe_id, session.reference_id)
        return session.reference_id

    async def _lookup(self, get: Any, resource_id: str) -> Any:
        try:
            return await get(resource_id, retry=LOOKUP_RETRY)
        except VoipbinError as error:
            if error.retryable:
                raise
            raise UnknownCall(f"VoIPBin lookup refused: {error.reason}") from None

    @staticmethod
    def _checked(model: type[_Answer], answer: Any) -> _Answer:
        try:
            return validated(model, answer, "answer")
        except PayloadError as error:
            raise UnknownCall(f"VoIPBin answered an unexpected {error.field or 'body'}") from None
