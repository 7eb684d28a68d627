"""The web chat WebSocket protocol: parsing client frames and building server frames.

Client → server:  {"type":"message","id":"<client message id>","text":"..."}  |  {"type":"ping"}
Server → client:  ready, ack, reply, error, pong (see the builders below).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_FRAME_BYTES = 64 * 1024
MAX_ID_LENGTH = 128


@dataclass(frozen=True)
class MessageFrame:
    """A customer's chat message."""

    id: str
    text: str


@dataclass(frozen=True)
class PingFrame:
    """Keep-alive."""


class FrameError(Exception):
    """A frame we refuse; `code` is machine-readable, `message` is for people."""

    def __init__(self, code: str, message: str, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id


def parse_client_frame(raw: str, max_text: int) -> MessageFrame | PingFrame:
    """Validate one text frame from the browser; raise `FrameError` with a clear code."""
    if len(raw.encode("utf-8", "replace")) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise FrameError("bad_json", "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise FrameError("bad_frame", "frame must be a JSON object")
    kind = data.get("type")
    if kind == "ping":
        return PingFrame()
    if kind != "message":
        raise FrameError("unknown_type", "type must be 'message' or 'ping'")
    frame_id = data.get("id")
    if not isinstance(frame_id, str) or not 0 < len(frame_id) <= MAX_ID_LENGTH:
        raise FrameError("bad_id", f"id must be a string of 1 to {MAX_ID_LENGTH} characters")
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FrameError("empty_text", "text must be a non-empty string", frame_id)
    if len(text) > max_text:
        raise FrameError("text_too_long", f"text is limited to {max_text} characters", frame_id)
    return MessageFrame(id=frame_id, text=text.strip())


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
