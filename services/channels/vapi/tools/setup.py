"""`switchboard vapi setup | call`: point a VAPI account at Switchboard, and dial out.

`setup` reads before it writes, so a second run changes nothing (it only reads). It makes
sure that (providers.md §3, `desired.py`): the server URL's and the custom LLM's credentials
exist; the assistant (default `switchboard`) uses the custom LLM `<public URL>/v1/vapi/llm`
and the server URL `<public URL>/v1/vapi/events` with that credential, sends the messages
ingress handles, and has `modelOutputInMessagesEnabled: false`; with `--phone-number-id`
(an id, or `auto` for the account's only number) that number's calls ask our server for
their assistant. Then it prints what the operator still has to do.

Nothing secret reaches the output: neither the private key nor any credential's secret.

`call` places an outbound call with that assistant (`POST /call`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from services.channels.vapi.client import VapiClient, VapiError, VapiUnreachable
from services.channels.vapi.settings import VapiSettings
from services.channels.vapi.tools import desired
from services.channels.vapi.tools.common import SetupError, VapiToolSettings, error_line


@dataclass
class SetupResult:
    """What `setup` left in place; `changed` names what it had to change (empty: nothing)."""

    assistant_id: str
    events_url: str
    llm_url: str
    server_credential: str
    llm_credential: str
    changed: list[str] = field(default_factory=list)
    phone_number: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


async def _credential(
    client: VapiClient, body: dict[str, Any], existing: list[Any]
) -> tuple[str, bool]:
    """The id of the credential named as `body` (created when missing), and whether created."""
    for credential in existing:
        if isinstance(credential, dict) and credential.get("name") == body["name"]:
            return str(credential["id"]), False
    return str((await client.create_credential(body))["id"]), True


async def find_assistant(client: VapiClient, name: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The assistant called `name` (the oldest if several are), and notes for the operator."""
    named = [a for a in await client.list_assistants() if a.get("name") == name]
    named.sort(key=lambda a: str(a.get("createdAt") or ""))
    notes = (
        [f"{len(named)} assistants are named {name!r}: using the oldest"] if len(named) > 1 else []
    )
    return (named[0] if named else None), notes


async def pick_number(client: VapiClient, choice: str) -> dict[str, Any]:
    """The phone number `choice` names, or for `auto` the account's only one."""
    if choice != "auto":
        return await client.get_phone_number(choice)
    numbers = await client.list_phone_numbers()
    if len(numbers) != 1:
        ids = ", ".join(str(n.get("id")) for n in numbers) or "none"
        raise SetupError(f"the account has {len(numbers)} phone numbers ({ids}): give one id")
    return dict(numbers[0])


async def ensure_setup(
    client: VapiClient,
    settings: VapiSettings,
    *,
    public_url: str,
    name: str = desired.DEFAULT_ASSISTANT_NAME,
    phone_number_id: str | None = None,
) -> SetupResult:
    """Make the account send calls to `public_url`; change only what differs."""
    public_url = public_url.rstrip("/")
    existing = await client.list_credentials()
    server_id, made_server = await _credential(
        client, desired.server_credential(settings), existing
    )
    llm_id, made_llm = await _credential(client, desired.llm_credential(settings), existing)
    result = SetupResult(
        "", desired.events_url(public_url), desired.llm_url(public_url), server_id, llm_id
    )
    result.changed += ["server credential"] * made_server + ["custom-llm credential"] * made_llm
    wanted = desired.desired_assistant(
        public_url,
        name=name,
        server_credential_id=server_id,
        llm_credential_id=llm_id,
        control_auth=settings.public_key is not None,
    )
    found, result.notes = await find_assistant(client, name)
    if found is None:
        result.assistant_id = str((await client.create_assistant(wanted))["id"])
        result.changed.append("assistant created")
    else:
        result.assistant_id = str(found["id"])
        patch = desired.changes(await client.get_assistant(result.assistant_id), wanted)
        if patch:
            await client.update_assistant(result.assistant_id, patch)
            result.changed.append("assistant updated")
    if phone_number_id:
        number = await pick_number(client, phone_number_id)
        patch = desired.changes(number, desired.desired_number(public_url, server_id))
        if patch:
            number = await client.update_phone_number(str(number["id"]), patch)
            result.changed.append("phone number")
        result.phone_number = number
    return result


@dataclass(frozen=True)
class PlacedCall:
    """An outbound call VAPI accepted."""

    call_id: str
    assistant_id: str
    phone_number_id: str
    status: str


async def place_call(
    client: VapiClient, *, to: str, name: str, phone_number_id: str | None
) -> PlacedCall:
    """Call `to` with the assistant `setup` made, from `phone_number_id` (default: the
    account's only number)."""
    assistant, _ = await find_assistant(client, name)
    if assistant is None:
        raise SetupError(f"no assistant named {name!r}: run `switchboard vapi setup` first")
    number = await pick_number(client, phone_number_id or "auto")
    call = await client.create_call(
        assistant_id=str(assistant["id"]), phone_number_id=str(number["id"]), number=to
    )
    return PlacedCall(
        str(call["id"]), str(assistant["id"]), str(number["id"]), str(call.get("status"))
    )


# -- command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `switchboard vapi setup | call`."""
    actions = parser.add_subparsers(dest="action", required=True)
    setup = actions.add_parser("setup", help="create or update the assistant and credentials")
    setup.add_argument("--public-url", default=None, help="where VAPI reaches ingress (https)")
    setup.add_argument("--name", default=desired.DEFAULT_ASSISTANT_NAME, help="assistant name")
    setup.add_argument(
        "--phone-number-id", default=None, help="a number to send inbound calls to us (or auto)"
    )
    call = actions.add_parser("call", help="place an outbound call with the assistant")
    call.add_argument("--to", required=True, help="the number to call (E.164)")
    call.add_argument("--name", default=desired.DEFAULT_ASSISTANT_NAME, help="assistant name")
    call.add_argument(
        "--phone-number-id", default=None, help="caller id number (default: the only one)"
    )


def todo(result: SetupResult, settings: VapiSettings, public_url: str) -> list[str]:
    """What the operator still has to do after `setup`."""
    steps = []
    if result.phone_number is None:
        steps.append(
            "attach a phone number: rerun with --phone-number-id <id> (or auto), so inbound"
            f" calls send assistant-request to {result.events_url}"
        )
    if not public_url.startswith("https://"):
        steps.append("VAPI needs a public https URL: use a tunnel or your domain as --public-url")
    steps.append(
        f"give ingress the same VAPI_AUTH_MODE ({settings.auth_mode}), VAPI_SERVER_SECRET and"
        " VAPI_LLM_KEY this run used (a new secret makes a new credential on the next run)"
    )
    if settings.public_key is None:
        steps.append(
            "control URLs are unauthenticated: set VAPI_PUBLIC_KEY and rerun to require it"
        )
    if settings.auth_mode == "hmac":
        steps.append(
            "HMAC: log one real request to check the timestamp unit before trusting"
            " VAPI_HMAC_TOLERANCE_S (VAPI does not document it)"
        )
    return steps


def setup_report(
    result: SetupResult, settings: VapiSettings, *, name: str, public_url: str
) -> list[str]:
    """What `setup` prints: ids, URLs and names, never a key or a secret."""
    state = next((c for c in result.changed if c.startswith("assistant")), "assistant unchanged")
    lines = [
        f"assistant:    {name} {result.assistant_id} [{state.removeprefix('assistant ')}]",
        f"  model:      custom-llm {result.llm_url} (VAPI posts <url>/chat/completions)",
        f"  server:     {result.events_url} ({settings.auth_mode},"
        f" credential {result.server_credential})",
        f"  messages:   {', '.join(desired.SERVER_MESSAGES)}",
        "  modelOutputInMessagesEnabled: false (assistant turns come back as what was heard)",
        f"  custom-llm: credential {result.llm_credential}",
    ]
    number = result.phone_number
    if number is not None:
        attached = "attached" if "phone number" in result.changed else "unchanged"
        lines.append(f"phone number: {number.get('number', '')} {number.get('id')} [{attached}]")
    lines += [f"note:         {note}" for note in result.notes]
    changes = ", ".join(result.changed) if result.changed else "none, already set up"
    lines.append(f"changed:      {changes}")
    lines += [f"to do:        {step}" for step in todo(result, settings, public_url)]
    return lines


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point of `switchboard vapi`; returns the exit code."""
    return asyncio.run(_main(args, out or sys.stdout, err or sys.stderr))


async def _main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = VapiToolSettings()
    client = settings.client()
    try:
        if args.action == "setup":
            public_url = args.public_url or (
                settings.public_base_url if "public_base_url" in settings.model_fields_set else ""
            )
            if not public_url.startswith(("http://", "https://")):
                raise SetupError("give --public-url https://... (or set PUBLIC_BASE_URL)")
            result = await ensure_setup(
                client,
                settings,
                public_url=public_url,
                name=args.name,
                phone_number_id=args.phone_number_id,
            )
            report = setup_report(result, settings, name=args.name, public_url=public_url)
            print("\n".join(report), file=out)
            return 0
        placed = await place_call(
            client, to=args.to, name=args.name, phone_number_id=args.phone_number_id
        )
        print(
            f"call {placed.call_id} to {args.to} [{placed.status}] (assistant"
            f" {placed.assistant_id}, number {placed.phone_number_id})",
            file=out,
        )
        return 0
    except (VapiError, VapiUnreachable, SetupError) as error:
        print(error_line(error, api_base=settings.api_url, key=settings.private_key), file=err)
        return 1
    finally:
        await client.aclose()
