"""Telling "not yet" from "never again" when VoIPBin refuses a request about a call.

VoIPBin answers 409 `STATE_INVALID` both before a call is `progressing` (the request may work
in a moment) and after it ended (it never will), and also when a speaking session is still
`initiating` or already stopped. The error alone does not say which, so on a 409 the guard
asks VoIPBin for the call (and the session) and then waits, gives up, or says why not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.channels.voipbin.client import VoipbinClient
from services.channels.voipbin.errors import VoipbinError
from services.channels.voipbin.outbound.policy import VoicePolicy
from services.channels.voipbin.store import CallRegistry
from services.common.consuming import PermanentFailure
from shared.logs import get_logger

log = get_logger("egress.voice")

T = TypeVar("T")

CALL_OVER_STATUSES = frozenset({"terminating", "canceling", "hangup"})


class CallOver(Exception):
    """The call is over (VoIPBin or the registry says so): nothing more is said on it."""


class SpeakingLost(Exception):
    """The call's speaking session cannot speak any more (stopped or unknown)."""


class CallGuard:
    """Runs VoIPBin requests about one call, waiting out 409s that mean "not yet"."""

    def __init__(self, client: VoipbinClient, calls: CallRegistry, policy: VoicePolicy) -> None:
        self._client = client
        self._calls = calls
        self._policy = policy

    async def run(
        self,
        call_id: str,
        request: Callable[[], Awaitable[T]],
        *,
        speaking_id: str | None = None,
    ) -> T:
        """`request()`, retried while the call (or `speaking_id`'s session) is not ready.

        Raises `CallOver` when the call ended (and marks it ended), `SpeakingLost` when the
        speaking session refuses for good, `PermanentFailure("voipbin_state_invalid")` when
        the call is still not ready after `state_wait_s`; other errors pass through.
        """
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._policy.state_wait_s
        attempt = 0
        while True:
            attempt += 1
            try:
                return await request()
            except VoipbinError as exc:
                if speaking_id and exc.not_found:
                    raise SpeakingLost("unknown") from None
                if not exc.state_invalid:
                    raise
            waiting_for = await self._not_ready(call_id, speaking_id)
            delay = self._policy.state_backoff_s(attempt)
            if loop.time() + delay > give_up_at:
                raise PermanentFailure(
                    "voipbin_state_invalid",
                    f"409 STATE_INVALID: {waiting_for} after {self._policy.state_wait_s:g} s",
                )
            log.info(
                "egress.voice.state_wait", call_id=call_id, waiting_for=waiting_for, attempt=attempt
            )
            await asyncio.sleep(delay)

    async def _not_ready(self, call_id: str, speaking_id: str | None) -> str:
        """What a 409 is waiting for, when waiting can help; raises when it cannot."""
        call = await self._client.get_call(call_id)
        status = str(call.get("status") or "")
        if status in CALL_OVER_STATUSES:
            await self._calls.mark_ended(call_id)
            raise CallOver(status)
        if status != "progressing" or not speaking_id:
            return f"call {status or 'in an unknown state'}"
        try:
            speaking = await self._client.get_speaking(speaking_id)
        except VoipbinError as exc:
            if exc.not_found:
                raise SpeakingLost("unknown") from None
            raise
        session = str(speaking.get("status") or "")
        if session == "initiating":
            return "speaking session initiating"
        raise SpeakingLost(session or "unknown")
