"""Twilio SMS against the channel conformance suite (`tests/conformance/base.py`).

Goldens: services/channels/sms/fixtures/. An inbound golden request is Twilio's webhook:
`{"method", "path", "headers", "form": [[name, value]...]}`, signed here with the account's
Auth Token for the public URL, as Twilio signs it. Outbound, the fake Twilio records every
Messages API request on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr

from services.channels.sms.channel import SMS
from services.channels.sms.fake import FakeTwilioConfig, FakeTwilioServer
from services.channels.sms.twilio import (
    INBOUND_PATH,
    SIGNATURE_HEADER,
    STATUS_PATH,
    TwilioSignatures,
)
from services.egress.config import EgressSettings
from services.ingress.identity import default_conversation_id
from tests.conformance.base import Capture, ChannelConformance, Copies, Deployment
from tests.conformance.goldens import Outcome
from tests.conformance.stack import RawRecorder, normalized
from tests.integration.test_hostile_http import PHONE, PUBLIC, ROUTES, TWILIO_TOKEN, Route
from tests.support.kafka import eventually

ACCOUNT = "AC" + "c0ffee00" * 4
"""The account of the fake Twilio (its Auth Token is the one ingress verifies with)."""


class RecordingTwilio(FakeTwilioServer):
    """The fake Twilio, with every request it receives kept as it was on the wire."""

    def __init__(self) -> None:
        super().__init__(
            FakeTwilioConfig(
                account_sid=ACCOUNT, auth_token=SecretStr(TWILIO_TOKEN), status_callbacks=False
            )
        )
        self.wire: RawRecorder | None = None

    def app(self) -> Any:
        self.wire = RawRecorder(super().app())
        return self.wire


def signed(path: str, pairs: list[tuple[str, str]], credential: str) -> dict[str, str]:
    """The `X-Twilio-Signature` header of a form post, made right or wrong."""
    url = f"{PUBLIC}{path}"
    if credential == "missing":
        return {}
    signature = {
        "valid": lambda: TwilioSignatures(TWILIO_TOKEN).sign(url, pairs),
        "forged": lambda: "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==",
        "other_token": lambda: TwilioSignatures("another-account-token").sign(url, pairs),
        # Signed for the URL the app listens on, not the public one Twilio called.
        "stale_url": lambda: TwilioSignatures(TWILIO_TOKEN).sign(f"http://127.0.0.1{path}", pairs),
        # A valid signature of other fields: the posted ones were changed on the way.
        "tampered": lambda: TwilioSignatures(TWILIO_TOKEN).sign(url, [*pairs, ("Body", "x")]),
    }[credential]()
    return {SIGNATURE_HEADER: signature}


class TestSmsConformance(ChannelConformance):
    plugin = SMS
    package = "services.channels.sms"
    forgeries = ("forged", "other_token", "stale_url", "tampered", "missing")

    @contextlib.asynccontextmanager
    async def provider(self) -> AsyncIterator[RecordingTwilio]:
        fake = await asyncio.to_thread(RecordingTwilio().start)
        try:
            yield fake
        finally:
            await asyncio.to_thread(fake.stop)

    def refused_statuses(self, request: Mapping[str, Any]) -> frozenset[int]:
        return frozenset({403})

    def egress_settings(self, deployment: Deployment) -> EgressSettings:
        fake: RecordingTwilio = deployment.provider
        return (
            super()
            .egress_settings(deployment)
            .model_copy(
                update={
                    "twilio_api_base": fake.base_url,
                    "twilio_account_sid": ACCOUNT,
                    "twilio_auth_token": SecretStr(TWILIO_TOKEN),
                }
            )
        )

    async def send(
        self, deployment: Deployment, request: Mapping[str, Any], credential: str = "valid"
    ) -> Outcome:
        pairs = [(name, value) for name, value in request["form"]]
        headers = {**request["headers"], **signed(request["path"], pairs, credential)}
        response = await deployment.http.request(
            request["method"], request["path"], content=urlencode(pairs), headers=headers
        )
        return Outcome(
            response.status_code, response.text, response.headers.get("content-type", "")
        )

    # -- one message, five times --------------------------------------------------------

    async def send_copies(self, deployment: Deployment, count: int) -> Copies:
        sid = "SM" + secrets.token_hex(16)
        text = "Where is my parcel"
        pairs = [
            ("ToCountry", "US"),
            ("SmsMessageSid", sid),
            ("NumMedia", "0"),
            ("SmsSid", sid),
            ("SmsStatus", "received"),
            ("Body", text),
            ("To", "+15005550006"),
            ("NumSegments", "1"),
            ("MessageSid", sid),
            ("AccountSid", ACCOUNT),
            ("From", PHONE),
            ("ApiVersion", "2010-04-01"),
        ]
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed(INBOUND_PATH, pairs, "valid"),
        }
        responses = await asyncio.gather(
            *(
                deployment.http.post(INBOUND_PATH, content=urlencode(pairs), headers=headers)
                for _ in range(count)
            )
        )
        assert [r.status_code for r in responses] == [200] * count, [r.text for r in responses]
        return Copies(default_conversation_id("sms", PHONE), text, {"to": PHONE})

    async def deliveries(self, deployment: Deployment, copies: Copies) -> int:
        fake: RecordingTwilio = deployment.provider
        sent = await eventually(
            lambda: [m for m in fake.messages() if m["to"] == copies.detail["to"]], 30
        )
        return len(sent)

    # -- outbound -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def outbound_capture(
        self, deployment: Deployment, golden: Mapping[str, Any]
    ) -> AsyncIterator[Capture]:
        fake: RecordingTwilio = deployment.provider
        assert fake.wire is not None
        recorder = fake.wire
        recorder.clear()

        async def read(count: int) -> list[dict[str, Any]]:
            await eventually(lambda: len(recorder.requests()) >= count, 10)
            return [normalized(r, {"<auth_token>": TWILIO_TOKEN}) for r in recorder.requests()]

        yield Capture(placeholders={}, read_wire=read)

    # -- hostile input --------------------------------------------------------------------

    def hostile_routes(self) -> Mapping[tuple[str, str], Route]:
        return {key: ROUTES[key] for key in (("POST", INBOUND_PATH), ("POST", STATUS_PATH))}
