"""Status callbacks: ``sent`` then the final status, signed as Twilio signs them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from services.channels.sms.fake.config import API_VERSION, CALLBACK_TIMEOUT_S, FakeTwilioConfig
from services.channels.sms.fake.state import FakeTwilioState


async def deliver_callbacks(
    state: FakeTwilioState,
    generation: int,
    url: str,
    resource: dict[str, Any],
    config: FakeTwilioConfig,
) -> None:
    """Send the ``sent`` then the final status callback for one accepted message."""
    delay = config.callback_delay_ms / 1000
    validator = RequestValidator(config.auth_token.get_secret_value())
    base = {
        "MessageSid": resource["sid"],
        "SmsSid": resource["sid"],
        "AccountSid": resource["account_sid"],
        "To": resource["to"],
        "ApiVersion": API_VERSION,
    }
    if resource["from"] is not None:
        base["From"] = resource["from"]
    if resource["messaging_service_sid"] is not None:
        base["MessagingServiceSid"] = resource["messaging_service_sid"]
    final = config.callback_final_status
    async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_S) as client:
        for status in ("sent", final):
            await asyncio.sleep(delay)
            now = datetime.now(UTC)
            error_code = config.callback_error_code if status == final else None
            if not state.advance(generation, resource["sid"], status, error_code, now):
                return  # reset meanwhile: Twilio "forgot" this message
            params = base | {"MessageStatus": status, "SmsStatus": status}
            if error_code is not None:
                params["ErrorCode"] = str(error_code)
            if status in ("delivered", "undelivered"):
                params["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
            signature = validator.compute_signature(url, params)
            record: dict[str, Any] = {
                "url": url,
                "params": params,
                "signature": signature,
                "status_code": None,
                "error": None,
            }
            try:
                response = await client.post(
                    url,
                    data=params,
                    headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
                )
                record["status_code"] = response.status_code
            except Exception as exc:  # any receiver failure is recorded, never raised
                record["error"] = f"{type(exc).__name__}: {exc}"
            state.record_callback(generation, record)
