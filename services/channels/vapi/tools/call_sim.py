"""`switchboard simulate vapi`: phone the running system as a VAPI caller, in text.

It drives the fake VAPI that `make run` starts (without VAPI_API_KEY):

1. `setup` (idempotent) with the ingress URL as the public URL, attaching the fake's phone
   number, so the fake holds what a real account would: the number's server URL and
   credential, the assistant's custom LLM and its key;
2. the fake's call driver plays the call against ingress (`POST /_fake/calls`, see
   services/channels/vapi/fake/driver.py): `assistant-request`, one custom-LLM request per
   line, barge-in when asked (`--interrupt-after N`), the end-of-call report;
3. what the caller heard is printed, turn by turn, with the call's `endedReason`.
The exit code is 0 when the call did not fail.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

import httpx

from services.channels.vapi.client import VapiError, VapiUnreachable
from services.channels.vapi.tools.common import SetupError, VapiToolSettings, error_line
from services.channels.vapi.tools.desired import DEFAULT_ASSISTANT_NAME
from services.channels.vapi.tools.setup import ensure_setup


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `switchboard simulate vapi`."""
    parser.add_argument(
        "lines", nargs="*", help="what the caller says, one turn each (none: stdin)"
    )
    parser.add_argument("--from", dest="sender", default="+15551234567", help="caller (E.164)")
    parser.add_argument("--web", action="store_true", help="a web call (no phone number)")
    parser.add_argument(
        "--interrupt-after", type=int, default=None, help="talk over each answer after N chars"
    )
    parser.add_argument(
        "--ingress-url", default=None, help="where VAPI reaches ingress (default PUBLIC_BASE_URL)"
    )
    parser.add_argument("--name", default=DEFAULT_ASSISTANT_NAME, help="assistant name")
    parser.add_argument("--timeout", type=float, default=30.0, help="longest answer (s)")


def transcript(result: dict[str, Any]) -> list[str]:
    """The call as the caller lived it, one line per utterance."""
    lines = [f"call {result['call_id']} ({result['call_type']})"]
    if result.get("greeting"):
        lines.append(f"agent:  {result['greeting']}")
    for turn in result.get("turns") or []:
        lines.append(f"caller: {turn['said']}")
        heard = turn.get("heard") or ""
        mark = " [interrupted]" if turn.get("interrupted") else ""
        lines.append(f"agent:  {heard}{mark}" if heard or mark else "agent:  (nothing)")
        if turn.get("error"):
            lines.append(f"error:  {turn['error']}")
    lines += [f"agent (control say): {text}" for text in result.get("said_by_control") or []]
    lines.append(f"ended:  {result.get('ended_reason', '')}")
    return lines


async def simulate_vapi(
    settings: VapiToolSettings, args: argparse.Namespace, lines: list[str], out: TextIO, err: TextIO
) -> int:
    """Set the fake up for ingress, play the call, print what was heard."""
    if not settings.uses_fake:
        print("error: simulate vapi drives the fake VAPI: unset VAPI_API_KEY", file=err)
        return 1
    ingress_url = (args.ingress_url or settings.public_base_url).rstrip("/")
    client = settings.client()
    try:
        await ensure_setup(
            client, settings, public_url=ingress_url, name=args.name, phone_number_id="auto"
        )
    except (VapiError, VapiUnreachable, SetupError) as error:
        print(error_line(error, api_base=settings.api_url, key=settings.private_key), file=err)
        return 1
    finally:
        await client.aclose()
    body = {
        "number": args.sender,
        "web": args.web,
        "lines": lines,
        "interrupt_after_chars": args.interrupt_after,
        "turn_timeout_s": args.timeout,
    }
    wait = 30.0 + args.timeout * (len(lines) + 1)
    async with httpx.AsyncClient(timeout=wait) as http:
        try:
            response = await http.post(f"{settings.api_url}/_fake/calls", json=body)
        except httpx.HTTPError as exc:
            print(f"error: the fake VAPI at {settings.api_url}: {type(exc).__name__}", file=err)
            return 1
    if response.status_code != 200:
        print(f"error: the fake VAPI refused the call: HTTP {response.status_code}", file=err)
        return 1
    result = response.json()
    print("\n".join(transcript(result)), file=out)
    return 1 if result.get("failed") else 0


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point of `switchboard simulate vapi`; returns the exit code."""
    lines = list(args.lines) or [line.strip() for line in sys.stdin if line.strip()]
    return asyncio.run(
        simulate_vapi(VapiToolSettings(), args, lines, out or sys.stdout, err or sys.stderr)
    )
