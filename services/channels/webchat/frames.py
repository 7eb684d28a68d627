"""The web chat WebSocket protocol: parsing client frames and building server frames.

Client → server:  {"type":"message","id":"<client message id>","text":"..."}  |  {"type":"ping"}
Server → client:  ready, ack, reply, error, pong (see the builders below).

Everything a browser sends is hostile until proven otherwise: `frame_text` and
`parse_client_frame` raise `FrameError` (a code the client can act on, a message that never
quotes the input) for anything else, and nothing else. Codes: docs/web-chat.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.safe_json import UntrustedJsonError, is_well_formed_text, loads_untrusted

MAX_FRAME_BYTES = 64 * 1024
MAX_ID_LENGTH = 128
MAX_FRAME_DEPTH = 8
"""A valid frame is one flat object; a little slack for fields clients may add later."""

# Ids become part of Kafka message ids and show up in ops events: no control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class MessageFrame:
    """A customer's chat message."""

    id: str
    text: str


@dataclass(frozen=True)
class PingFrame:
    """Keep-alive."""


class FrameError(Exception):
    """A frame we refuse; `code` is machine-readable, `message` is for people.

    `frame_id` is set only when the frame carried a valid id, so echoing it is always safe.
    """

    def __init__(self, code: str, message: str, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id


def frame_text(message: Mapping[str, Any]) -> str:
    """The text of one ASGI `websocket.receive` message; `FrameError("binary_frame")` if the
    client sent a binary frame (the protocol is JSON text only)."""
    text = message.get("text")
    if isinstance(text, str):
        return text
    if message.get("bytes") is not None:
        raise FrameError("binary_frame", "binary frames are not supported; send JSON text")
    raise FrameError("bad_frame", "empty WebSocket message")


def parse_client_frame(raw: str, max_text: int) -> MessageFrame | PingFrame:
    """Validate one text frame from the browser; raise `FrameError` with a clear code."""
    # Characters never outnumber UTF-8 bytes: the cheap check first, then the exact one.
    if len(raw) > MAX_FRAME_BYTES or len(raw.encode("utf-8", "replace")) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        data = loads_untrusted(raw, max_depth=MAX_FRAME_DEPTH)
    except UntrustedJsonError as error:
        frame_id = _id_despite_bad_unicode(raw) if error.code == "bad_unicode" else None
        raise FrameError(error.code, error.message, frame_id) from None
    if not isinstance(data, dict):
        raise FrameError("bad_frame", "frame must be a JSON object")
    kind = data.get("type")
    if kind == "ping":
        return PingFrame()
    if kind != "message":
        raise FrameError("unknown_type", "type must be 'message' or 'ping'")
    frame_id = _valid_id(data.get("id"))
    if frame_id is None:
        raise FrameError(
            "bad_id",
            f"id must be a string of 1 to {MAX_ID_LENGTH} characters without control characters",
        )
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FrameError("empty_text", "text must be a non-empty string", frame_id)
    if not is_well_formed_text(text):
        # loads_untrusted already refuses these; checked again because a str that cannot be
        # encoded fails far from here (Redis, Kafka, pydantic) and kills the socket.
        raise FrameError("bad_unicode", "text must not contain lone surrogates", frame_id)
    if len(text) > max_text:
        raise FrameError("text_too_long", f"text is limited to {max_text} characters", frame_id)
    return MessageFrame(id=frame_id, text=text.strip())


def _valid_id(value: Any) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        return None
    if _CONTROL.search(value) or not is_well_formed_text(value):
        return None
    return value


def _id_despite_bad_unicode(raw: str) -> str | None:
    """The id of a frame refused only for a lone surrogate, so the client learns which of its
    messages failed instead of resending it forever.

    Safe to parse again: `loads_untrusted` checks depth and numbers before well-formedness,
    so a `bad_unicode` document is already known to be within those limits.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "message":
        return None
    return _valid_id(data.get("id"))


def ready_frame(session_id: str) -> dict[str, Any]:
    return {"type": "ready", "session_id": session_id}


def ack_frame(message_id: str) -> dict[str, Any]:
    return {"type": "ack", "id": message_id}


def reply_frame(reply_id: str, in_reply_to: str | None, text: str) -> dict[str, Any]:
    return {"type": "reply", "reply_id": reply_id, "in_reply_to": in_reply_to, "text": text}


def error_frame(code: str, message: str, frame_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if frame_id is not None:
        frame["id"] = frame_id
    return frame


def pong_frame() -> dict[str, Any]:
    return {"type": "pong"}
