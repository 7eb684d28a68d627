"""Customer webhook events: ``data`` builders, the signature, delivery with retries."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from services.channels.voipbin.fake.config import DEV_CUSTOMER_ID, SIGNATURE_HEADER
from services.channels.voipbin.fake.state import FakeVoipbinState
from services.channels.voipbin.fake.wire import go_json, timestamp


def sign_body(secret: str, body: bytes) -> str:
    """The ``X-VoIPBIN-Signature`` value: ``sha256=`` + hex HMAC-SHA256(secret, raw body)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def transcript_data(
    transcribe_id: str,
    message: str,
    *,
    direction: Literal["in", "out"] = "in",
    customer_id: str = DEV_CUSTOMER_ID,
    offset_s: float = 0.0,
) -> dict[str, Any]:
    """``data`` of a ``transcript_created`` event (providers.md 1.5).

    It has no call or activeflow id: receivers map ``transcribe_id`` to the call.
    ``tm_transcript`` is an offset from the start of the call, written as VoIPBin does
    (``"0001-01-01 00:00:08.99"``); ``direction`` ``in`` is the caller.
    """
    offset = datetime(1, 1, 1) + timedelta(seconds=offset_s)
    return {
        "id": str(uuid.uuid4()),
        "customer_id": customer_id,
        "transcribe_id": transcribe_id,
        "direction": direction,
        "message": message,
        "tm_transcript": offset.strftime("0001-01-01 %H:%M:%S.") + f"{offset.microsecond:06d}"[:2],
        "tm_create": timestamp(datetime.now(UTC)),
    }


def speech_data(
    transcribe_id: str,
    *,
    message: str = "",
    direction: Literal["in", "out"] = "in",
    streaming_id: str | None = None,
) -> dict[str, Any]:
    """``data`` of ``transcribe_speech_started`` / ``_interim`` / ``_ended`` (providers.md 1.5)."""
    now = timestamp(datetime.now(UTC))
    return {
        "id": str(uuid.uuid4()),
        "streaming_id": streaming_id or str(uuid.uuid4()),
        "transcribe_id": transcribe_id,
        "direction": direction,
        "message": message,
        "tm_event": now,
        "tm_create": now,
    }


def deliver_event(
    state: FakeVoipbinState,
    event_type: str,
    data: Any,
    *,
    uri: str | None = None,
    method: str | None = None,
    sign: bool = True,
    signature: str | None = None,
) -> dict[str, Any]:
    """Send one customer webhook event as VoIPBin does and return the last attempt's record.

    ``signature`` overrides the computed header (e.g. a forgery); ``sign=False`` sends none.
    Blocks for the whole delivery, retries included. Raises :class:`RuntimeError` when there
    is no webhook URI (neither the customer's nor ``uri``).
    """
    config = state.config.model_copy()
    target_uri, target_method = state.webhook_target()
    uri, method = uri or target_uri, (method or target_method).upper()
    if not uri:
        raise RuntimeError("no webhook URI: set it with PUT /customer or set_webhook()")
    body = go_json({"type": event_type, "data": data})
    headers = {"Content-Type": "application/json"}
    secret = config.webhook_secret.get_secret_value() if config.webhook_secret else None
    header = (
        signature
        if signature is not None
        else (sign_body(secret, body) if sign and secret else None)
    )
    if header is not None:
        headers[SIGNATURE_HEADER] = header
    base = {
        "uri": uri,
        "method": method,
        "type": event_type,
        "body": body.decode(),
        "signature": header,
    }
    timeout = httpx.Timeout(config.webhook_timeout_s, connect=min(10.0, config.webhook_timeout_s))
    with httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=3) as client:
        for attempt in range(1, config.webhook_max_attempts + 1):
            record = base | {"attempt": attempt} | _send(client, method, uri, body, headers)
            state.record_delivery(record)
            status = record["status_code"]
            if status is not None and status < 500:
                break  # VoIPBin counts any non-5xx answer, 4xx included, as delivered
            if attempt < config.webhook_max_attempts:
                time.sleep(config.webhook_retry_delay_ms / 1000)
    return record


def _send(
    client: httpx.Client, method: str, uri: str, body: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    """One HTTP attempt: status, response text (first 2000 chars), error, elapsed time."""
    start = time.perf_counter()
    outcome: dict[str, Any] = {"status_code": None, "response": None, "error": None}
    try:
        response = client.request(method, uri, content=body, headers=headers)
        outcome.update(status_code=response.status_code, response=response.text[:2000])
    except httpx.HTTPError as exc:  # a failing receiver is recorded, never raised
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    return outcome | {"time": time.time(), "elapsed_s": time.perf_counter() - start}
