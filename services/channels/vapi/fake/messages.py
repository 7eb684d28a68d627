"""Server-URL messages as VAPI sends them (providers.md 3.1, 3.2): built, signed, posted.

Every message is ``POST {"message": {"type", "timestamp" (ms), "call", ...}}`` with the
credential's headers computed over the exact bytes sent.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from services.channels.vapi.fake.result import SentMessage
from services.channels.vapi.fake.signing import ServerAuth

_stamp_lock = threading.Lock()
_last_stamp = [0]


def timestamp_ms() -> int:
    """Milliseconds since the epoch, strictly increasing within the process (receivers dedupe
    on call id, type and timestamp)."""
    with _stamp_lock:
        _last_stamp[0] = max(int(time.time() * 1000), _last_stamp[0] + 1)
        return _last_stamp[0]


def envelope(message_type: str, call: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``{"message": {...}}`` of one type about ``call``."""
    message: dict[str, Any] = {"type": message_type, "timestamp": timestamp_ms(), "call": call}
    if isinstance(call.get("customer"), dict):
        message["customer"] = call["customer"]
    return {"message": message | fields}


def artifact(transcript: list[dict[str, str]], started: float) -> dict[str, Any]:
    """``artifact`` of a report or update: VAPI's messages, OpenAI's, and a transcript."""
    now = time.time()
    roles = {"assistant": "bot", "user": "user", "system": "system"}
    messages = [
        {
            "role": roles.get(entry["role"], entry["role"]),
            "message": entry["content"],
            "time": int(now * 1000),
            "secondsFromStart": round(now - started, 2),
        }
        for entry in transcript
    ]
    lines = [
        f"{'AI' if e['role'] == 'assistant' else 'User'}: {e['content']}"
        for e in transcript
        if e["role"] in ("assistant", "user")
    ]
    return {
        "messages": messages,
        "messagesOpenAIFormatted": [
            {"role": e["role"], "content": e["content"]} for e in transcript
        ],
        "transcript": "\n".join(lines),
    }


async def post_message(
    http: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    auth: ServerAuth | None,
    *,
    timeout_s: float,
    extra_headers: dict[str, str] | None = None,
) -> SentMessage:
    """POST one message, signed; the outcome is recorded, never raised."""
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {**(extra_headers or {}), "Content-Type": "application/json"}
    if auth is not None:
        headers |= auth.headers(raw, url=url)
    kind = str(payload.get("message", {}).get("type", ""))
    started = time.monotonic()
    try:
        response = await http.post(url, content=raw, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        elapsed = time.monotonic() - started
        return SentMessage(
            kind, url, None, elapsed, error=f"timeout after {timeout_s:g} s", body=payload
        )
    except httpx.HTTPError as exc:
        elapsed = time.monotonic() - started
        return SentMessage(kind, url, None, elapsed, error=type(exc).__name__, body=payload)
    elapsed = time.monotonic() - started
    try:
        answer: Any = response.json() if response.content else None
    except ValueError:
        answer = response.text[:500]
    error = "" if response.is_success else f"HTTP {response.status_code}"
    return SentMessage(kind, url, response.status_code, elapsed, answer, error, payload)
