"""VAPI's side of the wire, for the conformance checks (`test_vapi.py`): the compact JSON it
writes, its credentials made right or wrong (server URL, custom LLM), and the answers it gets,
a streamed one read back as frames."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import httpx

from services.channels.vapi.auth import events_url
from services.channels.vapi.fake import ServerAuth
from services.channels.vapi.settings import VapiSettings
from tests.conformance.goldens import Outcome
from tests.conformance.stack import substitute


def wire_json(value: Any) -> bytes:
    """JSON as VAPI (and the fake VAPI) writes it: compact, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def server_credential(settings: VapiSettings, body: bytes, how: str) -> dict[str, str]:
    """The headers VAPI authenticates a server-URL request with, signed by the fake VAPI as
    `settings` configure it (`how` = "valid"), or a way of getting them wrong: `forged` (another
    secret), `crossed` (the custom LLM's key), `misplaced` (the right one in another header),
    `wrong_prefix` (secret and bearer modes: `Bearer ` added or left out), `tampered` (hmac:
    the signature of another body), `stale` / `future` / `retimed` (hmac with a timestamp: an
    hour off, or moved after signing), `empty`, `missing`."""
    signer = ServerAuth.from_settings(settings)
    url = events_url(settings)

    def signed(
        auth: ServerAuth = signer, payload: bytes = body, now: float | None = None
    ) -> dict[str, str]:
        return auth.headers(payload, url=url, now=now)

    if how == "valid":
        return signed()
    if how == "missing":
        return {}
    if how == "empty":
        return dict.fromkeys(signed(), "")
    if how == "forged":
        return signed(replace(signer, secret="another-vapi-server-secret-0123"))
    if how == "crossed":  # the custom LLM's key where the server URL's credential goes
        return signed(replace(signer, secret=settings.llm_key.get_secret_value()))
    if how == "misplaced":  # the right credential in another header
        other = (
            "X-Vapi-Secret" if signer.header_name.lower() == "authorization" else "Authorization"
        )
        return {other if k == signer.header_name else k: v for k, v in signed().items()}
    if how == "wrong_prefix" and signer.mode == "secret":  # `Bearer ` before a bare secret
        return {signer.header_name: f"Bearer {signer.secret}"}
    if how == "wrong_prefix" and signer.mode == "bearer":  # the prefix added, or left out
        return signed(replace(signer, bearer_prefix=not signer.bearer_prefix))
    if how == "tampered":  # a valid signature of another body
        return signed(payload=body + b" ")
    if how in ("stale", "future"):
        return signed(now=time.time() + (3600 if how == "future" else -3600))
    if how == "retimed":  # the timestamp moved a second: the signature no longer covers it
        headers = signed()
        stamp = headers[signer.timestamp_header]
        return {**headers, signer.timestamp_header: str(int(stamp) + 1000)}
    raise ValueError(f"unknown forgery {how!r}")


def llm_credential(settings: VapiSettings, how: str) -> dict[str, str]:
    """`Authorization: Bearer <VAPI_LLM_KEY>` (the `custom-llm` credential), or wrong as
    `server_credential` says (`wrong_prefix`: the bare key)."""
    key = settings.llm_key.get_secret_value()
    headers = {
        "valid": {"Authorization": f"Bearer {key}"},
        "forged": {"Authorization": "Bearer " + "f" * len(key)},
        "crossed": {"Authorization": f"Bearer {settings.server_secret.get_secret_value()}"},
        "misplaced": {"X-Vapi-Secret": key},
        "wrong_prefix": {"Authorization": key},
        "empty": {"Authorization": ""},
        "missing": {},
    }
    return headers[how]


def server_sent_events(text: str) -> list[dict[str, Any]]:
    """Each event of an SSE body: `{"data": <chunk>}` or `{"data": "[DONE]"}`. The first
    chunk's id and creation time become placeholders wherever they recur, so a chunk with
    another one shows."""
    frames: list[dict[str, Any]] = []
    first: dict[str, Any] = {}
    for block in text.split("\n\n"):
        if not block:
            continue
        if not block.startswith("data: ") or "\n" in block:
            frames.append({"unexpected": block})
            continue
        data = block.removeprefix("data: ")
        if data == "[DONE]":
            frames.append({"data": data})
            continue
        chunk = json.loads(data)
        first = first or {"id": chunk.get("id"), "created": chunk.get("created")}
        for key, placeholder in (("id", "<completion_id>"), ("created", "<created>")):
            if key in chunk and chunk[key] == first[key]:
                chunk[key] = placeholder
        frames.append({"data": chunk})
    return frames


def outcome_of(response: httpx.Response, settings: VapiSettings) -> Outcome:
    text = substitute(
        response.text,
        {
            settings.server_secret.get_secret_value(): "<server_secret>",
            settings.llm_key.get_secret_value(): "<llm_key>",
        },
    )
    content_type = response.headers.get("content-type", "")
    streamed = content_type.startswith("text/event-stream")
    frames = server_sent_events(text) if streamed else []
    return Outcome(response.status_code, text, content_type, frames)
