"""`switchboard simulate sms | call | vapi`: act as a provider against the running system.

`simulate call` phones the system through the fake VoIPBin (see `voipbin_call_sim`);
`simulate vapi` through the fake VAPI (see `services/channels/vapi/tools/call_sim.py`).

`simulate sms` texts the running system as Twilio would, and shows the answer.

It posts a correctly signed inbound-message webhook (`X-Twilio-Signature` over the public URL,
with the configured Auth Token) to ingress, then watches Twilio's message log (the REST list
endpoint) for what egress sent back to that number. After `make run` without Twilio credentials
both ends are local: the webhook goes to ingress and the log is the fake Twilio's. With real
credentials the reply is a real SMS to `--from`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from xml.etree import ElementTree

import httpx
from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.channels.sms.keywords import Keyword, classify
from services.channels.sms.twilio import (
    DEV_ACCOUNT_SID,
    INBOUND_PATH,
    SIGNATURE_HEADER,
    TwilioSettings,
    TwilioSignatures,
)
from shared.settings import BaseServiceSettings


class SimulatorSettings(BaseServiceSettings, TwilioSettings):
    """The same Twilio settings the services read, from the same environment."""

    model_config = SettingsConfigDict(env_prefix="INGRESS_", extra="ignore", populate_by_name=True)

    port: int = 8000
    fake_twilio_port: int = Field(default=8010, validation_alias=AliasChoices("FAKE_TWILIO_PORT"))

    @property
    def message_log_base(self) -> str:
        """Where to read sent messages: `make run` starts the fake Twilio when no account is set."""
        if "twilio_api_base" not in self.model_fields_set and (
            self.twilio_account_sid == DEV_ACCOUNT_SID
        ):
            return f"http://127.0.0.1:{self.fake_twilio_port}"
        return self.twilio_api_base


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `switchboard simulate sms | call | vapi`."""
    from services.channels.vapi.tools import call_sim as vapi_call_sim
    from services.channels.voipbin.tools import call_sim as voipbin_call_sim

    channels = parser.add_subparsers(dest="channel", required=True)
    voipbin_call_sim.add_arguments(
        channels.add_parser("call", help="phone the system through the fake VoIPBin")
    )
    vapi_call_sim.add_arguments(
        channels.add_parser("vapi", help="phone the system through the fake VAPI")
    )
    sms = channels.add_parser("sms", help="text the system as Twilio would")
    sms.add_argument("text", help="the message the customer sends")
    sms.add_argument(
        "--from", dest="sender", default="+15551234567", help="customer number (E.164)"
    )
    sms.add_argument("--to", default=None, help="our number (default TWILIO_FROM_NUMBER)")
    sms.add_argument(
        "--ingress-url", default=None, help="where ingress listens (default :INGRESS_PORT)"
    )
    sms.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a reply")


def run(args: argparse.Namespace) -> int:
    """Entry point; returns the process exit code."""
    if args.channel == "call":
        from services.channels.voipbin.tools import call_sim as voipbin_call_sim

        return voipbin_call_sim.run(args)
    if args.channel == "vapi":
        from services.channels.vapi.tools import call_sim as vapi_call_sim

        return vapi_call_sim.run(args)
    return asyncio.run(simulate_sms(args))


async def simulate_sms(args: argparse.Namespace) -> int:
    """Post one signed webhook, then print the replies Twilio's log shows for the sender."""
    settings = SimulatorSettings()
    ingress_url = (args.ingress_url or f"http://127.0.0.1:{settings.port}").rstrip("/")
    our_number = args.to or settings.twilio_from_number
    message_sid = "SM" + secrets.token_hex(16)
    form = [
        ("ToCountry", "US"),
        ("SmsMessageSid", message_sid),
        ("NumMedia", "0"),
        ("SmsSid", message_sid),
        ("SmsStatus", "received"),
        ("Body", args.text),
        ("To", our_number),
        ("NumSegments", "1"),
        ("MessageSid", message_sid),
        ("AccountSid", settings.twilio_account_sid),
        ("From", args.sender),
        ("ApiVersion", "2010-04-01"),
    ]
    signed_url = f"{settings.public_base_url}{INBOUND_PATH}"
    signature = TwilioSignatures(settings.twilio_auth_token.get_secret_value()).sign(
        signed_url, form
    )
    auth = httpx.BasicAuth(
        settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()
    )
    log_url = (
        f"{settings.message_log_base}/2010-04-01/Accounts/{settings.twilio_account_sid}"
        "/Messages.json"
    )
    async with httpx.AsyncClient(timeout=15.0) as http:
        seen = await _sent_to(http, log_url, auth, args.sender)
        if seen is None:
            print(f"cannot read Twilio's message log at {settings.message_log_base}")
            return 1
        response = await http.post(
            f"{ingress_url}{INBOUND_PATH}", data=dict(form), headers={SIGNATURE_HEADER: signature}
        )
        print(f"-> {args.sender} texted {args.text!r} ({message_sid})")
        print(f"   ingress answered HTTP {response.status_code}")
        if response.status_code != 200:
            print(f"   {response.text[:300]}")
            return 1
        inline = _twiml_messages(response.text)
        for text in inline:
            print(f"<- inline TwiML reply: {text!r}")
        if inline:
            return 0
        keyword = classify(args.text)
        if keyword is not None and keyword[0] is not Keyword.HELP:
            # Twilio itself confirms opt-out/opt-in keywords; Switchboard sends nothing.
            print(f"   {keyword[1]} is an {keyword[0].value.replace('_', '-')} keyword: no reply")
            return 0
        return await _wait_for_replies(http, log_url, auth, args.sender, seen, args.wait)


async def _wait_for_replies(
    http: httpx.AsyncClient,
    log_url: str,
    auth: httpx.BasicAuth,
    number: str,
    seen: dict[str, str],
    wait_s: float,
) -> int:
    print(f"   waiting up to {wait_s:.0f} s for the reply...")
    deadline = time.monotonic() + wait_s
    got_any_at: float | None = None
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        current = await _sent_to(http, log_url, auth, number) or {}
        new = {sid: body for sid, body in current.items() if sid not in seen}
        for sid, body in new.items():
            print(f"<- Switchboard replied to {number}: {body!r} ({sid})")
            got_any_at = time.monotonic()
        seen.update(new)
        # A reply may come in parts; stop once nothing new arrived for a moment.
        if got_any_at is not None and time.monotonic() - got_any_at > 2.0:
            return 0
    if got_any_at is None:
        print("   no reply (keywords such as STOP get none; see the egress log otherwise)")
        return 1
    return 0


async def _sent_to(
    http: httpx.AsyncClient, log_url: str, auth: httpx.BasicAuth, number: str
) -> dict[str, str] | None:
    """Messages Twilio's log holds for `number`, oldest first (sid → body)."""
    try:
        response = await http.get(log_url, params={"To": number, "PageSize": "50"}, auth=auth)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    messages = response.json().get("messages", [])
    return {str(item["sid"]): str(item.get("body") or "") for item in reversed(messages)}


def _twiml_messages(body: str) -> list[str]:
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - our own ingress's answer
    except ElementTree.ParseError:
        return []
    return [element.text or "" for element in root.iter("Message")]
