"""What one custom-LLM request asks (providers.md §3.5): which call, which user turn, and
what the caller heard of the previous answer.

VAPI posts an OpenAI Chat Completions body with the call's whole history in `messages` and,
with `metadataSendMode: variable` (the default), the `call` object. The body is parsed
defensively: only a missing call id or a missing user message makes it unusable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.channels.vapi.callers import CallRef, call_ref

MAX_TEXT_CHARS = 8000
"""`InboundMessage.text` and `.heard` hold at most this much."""
DEFAULT_MODEL = "switchboard"
MAX_MODEL_CHARS = 100


class TurnError(ValueError):
    """The request cannot be answered (a 400): `code` is machine-readable; the message never
    quotes the input."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class LlmTurn:
    """One user turn of a call, as a custom-LLM request asks for its answer."""

    call: CallRef
    user_messages: int
    """How many user messages `messages` holds: the turn's number within the call."""
    text: str
    """The last user message: what the caller said (may be blank)."""
    heard: str | None
    """The assistant message right before it: VAPI's transcription of what was spoken."""
    model: str
    stream: bool

    @property
    def message_id(self) -> str:
        """The turn's provider message id: a retried request (same messages) is the same
        turn, so the brain answers it once."""
        return f"{self.call.call_id}:turn:{self.user_messages}"


def parse_turn(body: Any) -> LlmTurn:
    """The turn a request body asks about; raises `TurnError` when it names no call or
    holds no user message."""
    if not isinstance(body, Mapping):
        raise TurnError("not_an_object", "the body must be a JSON object")
    call = call_ref(body.get("call"))
    if call is None:
        raise TurnError("no_call", "the request names no call (call.id)")
    raw_messages = body.get("messages")
    messages = raw_messages if isinstance(raw_messages, list) else []
    users = [i for i, message in enumerate(messages) if _role(message) == "user"]
    if not users:
        raise TurnError("no_user_message", "messages hold no user message")
    last = users[-1]
    model = body.get("model")
    return LlmTurn(
        call=call,
        user_messages=len(users),
        text=(text_of(messages[last].get("content")) or "").strip()[:MAX_TEXT_CHARS],
        heard=_heard(messages[:last]),
        model=model
        if isinstance(model, str) and 0 < len(model) <= MAX_MODEL_CHARS
        else DEFAULT_MODEL,
        stream=body.get("stream") is not False,
    )


def text_of(content: Any) -> str | None:
    """The text of a message's `content`: a string, or a list of parts of type `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
        return " ".join(text.strip() for text in texts if text.strip()) if texts else None
    return None


def without_filler(heard: str | None, filler_text: str) -> str | None:
    """`heard` without the filler the route spoke before the answer: the brain compares it
    with the answer it remembers, which never contained the filler."""
    if heard is None or not filler_text:
        return heard
    return heard.removeprefix(filler_text).strip() if heard.startswith(filler_text) else heard


def _heard(before: Sequence[Any]) -> str | None:
    """The assistant message closest before the user turn; None when a user message comes
    first (the previous answer was not heard at all, or belongs to an earlier turn) or
    there is none."""
    for message in reversed(before):
        role = _role(message)
        if role == "user":
            return None
        if role == "assistant":
            text = text_of(message.get("content"))
            return text.strip()[:MAX_TEXT_CHARS] if text is not None else None
    return None


def _role(message: Any) -> str | None:
    if not isinstance(message, Mapping):
        return None
    role = message.get("role")
    return role if isinstance(role, str) else None
