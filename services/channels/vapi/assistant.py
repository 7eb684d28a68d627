"""The answer to `assistant-request`: a transient assistant whose model is our custom LLM and
whose first message is the brain's greeting for this caller (providers.md §3.3, §3.5).

VAPI waits at most 7.5 s for the answer, end to end. The greeting is asked for with a
GREETING message in reply mode SYNC (correlation id `<call id>:greeting`, `reply_to` this
instance); egress hands the brain's answer back as a `HeldAnswer` whose body is
`{"text": "..."}`. Whatever happens (Kafka not acknowledging, no answer in time, an answer
that is not text), the request is answered by its deadline, with `VAPI_FALLBACK_GREETING`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from services.channels.sdk.publish import ChannelPublisher
from services.channels.vapi.auth import events_url, sign
from services.channels.vapi.settings import LLM_BASE_PATH, VapiSettings
from shared.contracts import MessageKind, ReplyMode, ReplyModeKind
from shared.contracts.inbox import HeldAnswer
from shared.logs import get_logger

log = get_logger("ingress.vapi.greeting")

MODEL_NAME = "switchboard"
MAX_GREETING_CHARS = 1000


def greeting_id(call_id: str) -> str:
    """Provider message id, and correlation id, of a call's greeting."""
    return f"{call_id}:greeting"


def transient_assistant(
    settings: VapiSettings, greeting: str, credential_id: str = ""
) -> dict[str, Any]:
    """`{"assistant": {...}}`: our custom LLM speaking `greeting` first.

    `modelOutputInMessagesEnabled: false`: the assistant turns VAPI sends the LLM back are
    what was actually spoken (docs/vapi.md, "What the caller heard"). `metadataSendMode:
    variable` makes every LLM request carry the `call` (the LLM route keys by `call.id`).
    The server block keeps VAPI authenticating to us: `VAPI_SERVER_CREDENTIAL_ID`, else the
    credential of the phone number's server that sent the request, else (secret and bearer
    modes) the header itself. With none of them (hmac, nothing known) it is left out, and
    the phone number's (or the organisation's) server URL, which just authenticated, applies.
    """
    base = settings.public_base_url.rstrip("/")
    assistant: dict[str, Any] = {
        "name": "Switchboard",
        "firstMessage": greeting,
        "firstMessageMode": "assistant-speaks-first",
        "model": {
            "provider": "custom-llm",
            "url": f"{base}{LLM_BASE_PATH}",
            "model": MODEL_NAME,
            "metadataSendMode": "variable",
        },
        "modelOutputInMessagesEnabled": False,
    }
    if settings.voice:
        assistant["voice"] = {"provider": "vapi", "voiceId": settings.voice}
    credential = settings.server_credential_id or credential_id
    if credential:
        assistant["server"] = {"url": events_url(settings), "credentialId": credential}
    elif settings.auth_mode in ("secret", "bearer"):
        assistant["server"] = {"url": events_url(settings), "headers": sign(settings, b"")}
    return {"assistant": assistant}


def greeting_text(body: str) -> str | None:
    """The text of a held answer's body `{"text": "..."}`; None when it is not that."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    text = answer.get("text") if isinstance(answer, dict) else None
    if not isinstance(text, str) or not text.strip():
        return None
    return text.strip()[:MAX_GREETING_CHARS]


class Greetings:
    """Asks the brain for callers' greetings and holds each request until it is answered."""

    def __init__(self, publisher: ChannelPublisher, instance_id: str, fallback: str) -> None:
        self._publisher = publisher
        self._instance_id = instance_id
        self.fallback = fallback
        self._pending: dict[str, asyncio.Future[str | None]] = {}

    async def ask(self, call_id: str, conversation_id: str, reply_by: float) -> tuple[str, str]:
        """`(greeting, outcome)`: the brain's greeting if it comes by `reply_by` (event loop
        time), else the fallback. Raises `PublishFailed` when Kafka did not acknowledge."""
        loop = asyncio.get_running_loop()
        correlation_id = greeting_id(call_id)
        if correlation_id in self._pending:  # a copy of a request this instance holds
            return await self.duplicate(call_id, reply_by), "duplicate"
        future: asyncio.Future[str | None] = loop.create_future()
        # Registered before publishing: the answer may come back before the ack does.
        self._pending[correlation_id] = future
        mode = ReplyMode(
            kind=ReplyModeKind.SYNC,
            deadline_at=datetime.now(UTC) + timedelta(seconds=max(0.0, reply_by - loop.time())),
            correlation_id=correlation_id,
            reply_to=self._instance_id,
        )
        try:
            async with asyncio.timeout_at(reply_by):
                await self._publisher.publish(
                    kind=MessageKind.GREETING,
                    provider_message_id=correlation_id,
                    address=call_id,
                    conversation_id=conversation_id,
                    reply=mode,
                )
                text = await asyncio.shield(future)
        except TimeoutError:
            return self.fallback, "timeout"
        finally:
            if self._pending.get(correlation_id) is future:
                del self._pending[correlation_id]
        if text is None:
            return self.fallback, "bad_answer"
        return text, "answered"

    async def duplicate(self, call_id: str, reply_by: float) -> str:
        """The greeting for a repeated request: the first one's answer when this instance
        still holds it (by `reply_by`), else the fallback at once."""
        future = self._pending.get(greeting_id(call_id))
        if future is None:
            return self.fallback
        try:
            async with asyncio.timeout_at(reply_by):
                text = await asyncio.shield(future)
        except TimeoutError:
            return self.fallback
        return text or self.fallback

    async def on_held_answer(self, entry: HeldAnswer) -> None:
        """Egress's answer to a held request; entries for other holders are ignored (other
        channels share the entry type)."""
        future = self._pending.get(entry.correlation_id)
        if future is None or future.done():
            return  # not ours, or answered by the fallback already
        text = greeting_text(entry.body)
        if text is None:
            log.warning("ingress.vapi.greeting.bad_answer")
        future.set_result(text)
