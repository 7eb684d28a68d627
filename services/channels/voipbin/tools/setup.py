"""`switchboard voipbin setup | call`: point a VoIPBin account at Switchboard, and dial out.

`setup` compares before it writes, so running it again changes nothing (it only reads) and
prints the same SIP URI. It makes sure that (providers.md §1):
- the customer's event webhook is `<public URL>/v1/voipbin/events`, method POST;
- a flow (default name `switchboard`) runs `answer`, then `fetch` from
  `<public URL>/v1/voipbin/fetch/<token>` (VoIPBin does not sign fetches: the token guards it);
- the flow has a Direct Hash. It is read from the API and regenerated only when empty, never
  computed; callers dial `sip:<direct_hash>@sip.voipbin.net`.

Nothing secret reaches the output: never the accesskey, the fetch token only masked, the
webhook secret masked unless `--show-secret` asks for the line to paste into `.env`.

`call` places an outbound call that runs the same flow (`POST /calls` with its `flow_id`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.channels.voipbin import actions as voipbin_actions
from services.channels.voipbin.client import VoipbinClient
from services.channels.voipbin.errors import VoipbinError, VoipbinUnreachable
from services.channels.voipbin.settings import (
    DEV_ACCESS_KEY,
    EVENTS_PATH,
    VoipbinSettings,
    fetch_url,
    sip_uri,
)
from services.common.backoff import RetryPolicy
from shared.settings import BaseServiceSettings, plain_env

DEFAULT_FLOW_NAME = "switchboard"
FLOW_DETAIL = (
    "Switchboard voice agent: answer, then fetch the next actions from Switchboard."
    " Managed by `switchboard voipbin setup`."
)
TOOL_RETRY = RetryPolicy(max_attempts=2, base_s=0.2, cap_s=1.0, budget_s=5.0)
"""A person is waiting at the terminal: retry once, then say what is wrong."""
KEPT_CUSTOMER_FIELDS = ("name", "detail", "email", "phone_number", "address")
"""`PUT /customer` replaces these too (VoIPBin's CustomerSelfUpdate passes every field on),
so the update sends their current values back instead of blanking them."""
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


class VoipbinToolSettings(BaseServiceSettings, VoipbinSettings):
    """What the VoIPBin tools read from the environment (the services' own variables)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    public_base_url: str | None = Field(
        default=None,
        validation_alias=plain_env("PUBLIC_BASE_URL"),
        description="Where VoIPBin reaches ingress; the default of `--public-url`.",
    )
    voipbin_source_number: str = Field(
        default="+15550000000",
        validation_alias=plain_env("VOIPBIN_SOURCE_NUMBER"),
        description="Caller id of `switchboard voipbin call` (a number of the account).",
    )
    fake_voipbin_port: int = Field(
        default=8020,
        validation_alias=plain_env("FAKE_VOIPBIN_PORT"),
        description="Port of the fake VoIPBin that `make run` starts without an accesskey.",
    )
    ingress_port: int = Field(default=8000, validation_alias=plain_env("INGRESS_PORT"))

    @property
    def api_base(self) -> str:
        """The API to use: the fake's on :FAKE_VOIPBIN_PORT when neither the base nor a real
        accesskey is configured (as `make run` does), else VOIPBIN_API_BASE."""
        if "voipbin_api_base" not in self.model_fields_set and (
            self.voipbin_access_key.get_secret_value() == DEV_ACCESS_KEY
        ):
            return f"http://127.0.0.1:{self.fake_voipbin_port}/v1.0"
        return self.voipbin_api_base

    def client(self) -> VoipbinClient:
        """A REST client on :attr:`api_base` with the short retry policy of a CLI."""
        return tool_client(self.api_base, self.voipbin_access_key.get_secret_value())


def tool_client(api_base: str, access_key: str) -> VoipbinClient:
    """A REST client for a tool: someone waits at the terminal, so retries are short."""
    settings = VoipbinSettings.model_validate(
        {"voipbin_api_base": api_base, "voipbin_access_key": access_key}
    )
    return VoipbinClient(settings, retry=TOOL_RETRY)


class SetupError(Exception):
    """The account cannot be set up or used as asked (a message for the operator)."""


@dataclass(frozen=True)
class SetupResult:
    """What `setup` left in place; `changed` names what it had to change (empty: nothing)."""

    uri: str
    flow_id: str
    changed: list[str]
    direct_hash: str = ""
    webhook_uri: str = ""
    customer_id: str = ""
    webhook_secret: str = field(default="", repr=False)
    notes: list[str] = field(default_factory=list)


# -- pure helpers -----------------------------------------------------------------------------


def desired_actions(public_url: str, fetch_token: str) -> list[voipbin_actions.Action]:
    """The flow Switchboard needs: answer, then ask ingress what to do."""
    return [
        voipbin_actions.answer(),
        voipbin_actions.fetch(fetch_url(public_url, fetch_token), "POST"),
    ]


def comparable(actions: Any) -> list[tuple[str, str]] | None:
    """Actions reduced to type and option: the `id`/`next_id` VoIPBin adds do not count."""
    if not isinstance(actions, list):
        return None
    reduced = []
    for action in actions:
        if not isinstance(action, dict):
            return None
        option = json.dumps(action.get("option") or {}, sort_keys=True)
        reduced.append((str(action.get("type") or ""), option))
    return reduced


def flow_is_current(flow: dict[str, Any], actions: list[voipbin_actions.Action]) -> bool:
    """Whether a stored flow already has these actions and our detail text."""
    return (
        comparable(flow.get("actions")) == comparable(actions) and flow.get("detail") == FLOW_DETAIL
    )


def customer_update(customer: dict[str, Any], webhook_uri: str) -> dict[str, str]:
    """`PUT /customer` body: the new webhook plus the fields it would otherwise blank."""
    kept = {
        name: str(customer.get(name) or "") for name in KEPT_CUSTOMER_FIELDS if name in customer
    }
    return kept | {"webhook_uri": webhook_uri, "webhook_method": "POST"}


def mask(secret: str, keep: int = 4) -> str:
    """The first `keep` characters and an ellipsis (nothing at all of a short secret)."""
    return f"{secret[:keep]}…" if len(secret) > 2 * keep else "…"


def masked_fetch_url(public_url: str, fetch_token: str) -> str:
    """The fetch URL for output: the path token masked."""
    return fetch_url(public_url, mask(fetch_token))


def address(target: str) -> dict[str, str]:
    """An Address for `POST /calls`: `tel` for +E.164, `sip` for a SIP URI.

    VoIPBin's `sip` target is `user@domain` without the `sip:` scheme (Address docs in the
    monorepo: "SIP URI (e.g. user@domain.com)"), which is also how the fake stores calls
    to a Direct Hash.
    """
    target = target.strip()
    if E164.match(target):
        return {"type": "tel", "target": target}
    user_at_host = target.removeprefix("sip:")
    if "@" in user_at_host and not user_at_host.startswith("@") and " " not in user_at_host:
        return {"type": "sip", "target": user_at_host}
    raise ValueError(f"{target!r} is neither a +E.164 number nor a sip:user@host URI")


def call_id_of(response: dict[str, Any]) -> str:
    """The call id of a `POST /calls` answer: `calls[0].id`, or for tel destinations (dialled
    through a groupcall) `groupcalls[0].call_ids[0]`."""
    for call in response.get("calls") or []:
        if isinstance(call, dict) and call.get("id"):
            return str(call["id"])
    for group in response.get("groupcalls") or []:
        ids = group.get("call_ids") if isinstance(group, dict) else None
        if ids:
            return str(ids[0])
    raise SetupError("VoIPBin created no call (the answer names none)")


# -- talking to VoIPBin -----------------------------------------------------------------------


async def find_flow(client: VoipbinClient, name: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The flow called `name` (the oldest if several are), and notes for the operator."""
    named = [flow for flow in await client.list_flows() if flow.get("name") == name]
    named.sort(key=lambda flow: str(flow.get("tm_create") or ""))
    notes = [f"{len(named)} flows are named {name!r}: using the oldest"] if len(named) > 1 else []
    return (named[0] if named else None), notes


async def ensure_setup(
    client: VoipbinClient,
    *,
    public_url: str,
    fetch_token: str,
    flow_name: str = DEFAULT_FLOW_NAME,
) -> SetupResult:
    """Make the account send events and calls to `public_url`; change only what differs."""
    public_url = public_url.rstrip("/")
    changed: list[str] = []
    customer = await client.get_customer()
    webhook_uri = public_url + EVENTS_PATH
    method = str(customer.get("webhook_method") or "").upper()
    if customer.get("webhook_uri") != webhook_uri or method != "POST":
        await client.update_customer(**customer_update(customer, webhook_uri))
        changed.append("webhook")

    actions = desired_actions(public_url, fetch_token)
    found, notes = await find_flow(client, flow_name)
    if found is None:
        created = await client.create_flow(flow_name, FLOW_DETAIL, actions)
        flow = await client.get_flow(str(created["id"]))
        changed.append("flow created")
    else:
        flow = await client.get_flow(str(found["id"]))
        if not flow_is_current(flow, actions):
            await client.update_flow(str(flow["id"]), flow_name, FLOW_DETAIL, actions)
            flow = await client.get_flow(str(flow["id"]))
            changed.append("flow updated")

    flow_id = str(flow["id"])
    direct_hash = str(flow.get("direct_hash") or "")
    if not direct_hash:
        regenerated = await client.regenerate_direct_hash(flow_id)
        direct_hash = str(regenerated.get("direct_hash") or "")
        if not direct_hash:
            direct_hash = str((await client.get_flow(flow_id)).get("direct_hash") or "")
        changed.append("direct hash")
    if not direct_hash:
        raise SetupError(f"VoIPBin gave flow {flow_id} no Direct Hash, even after regenerating")
    return SetupResult(
        uri=sip_uri(direct_hash),
        flow_id=flow_id,
        changed=changed,
        direct_hash=direct_hash,
        webhook_uri=webhook_uri,
        customer_id=str(customer.get("id") or ""),
        webhook_secret=str(customer.get("webhook_secret") or ""),
        notes=notes,
    )


@dataclass(frozen=True)
class PlacedCall:
    """An outbound call VoIPBin accepted."""

    call_id: str
    flow_id: str
    destination: dict[str, str]


async def place_call(
    client: VoipbinClient, *, to: str, source: str, flow_name: str = DEFAULT_FLOW_NAME
) -> PlacedCall:
    """Call `to` from `source`, running the flow that `setup` made."""
    destination, caller = address(to), address(source)
    flow, _ = await find_flow(client, flow_name)
    if flow is None:
        raise SetupError(
            f"no flow named {flow_name!r}: run `switchboard voipbin setup --public-url URL` first"
        )
    response = await client.create_call(caller, [destination], flow_id=str(flow["id"]))
    return PlacedCall(call_id_of(response), str(flow["id"]), destination)


# -- command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `switchboard voipbin setup | call`."""
    actions = parser.add_subparsers(dest="action", required=True)
    setup = actions.add_parser("setup", help="point the account's webhook and a flow at us")
    setup.add_argument(
        "--public-url", default=None, help="where VoIPBin reaches ingress (default PUBLIC_BASE_URL)"
    )
    setup.add_argument("--flow-name", default=DEFAULT_FLOW_NAME, help="name of the flow")
    setup.add_argument(
        "--show-secret", action="store_true", help="print VOIPBIN_WEBHOOK_SECRET=<secret>"
    )
    call = actions.add_parser("call", help="place an outbound call that runs the flow")
    call.add_argument("--to", required=True, help="+E.164 number or sip:user@host URI")
    call.add_argument(
        "--from", dest="source", default=None, help="caller id (default VOIPBIN_SOURCE_NUMBER)"
    )
    call.add_argument("--flow-name", default=DEFAULT_FLOW_NAME, help="name of the flow")


def setup_report(
    result: SetupResult, *, flow_name: str, public_url: str, fetch_token: str, show_secret: bool
) -> list[str]:
    """What `setup` prints: no accesskey, the fetch token masked, the secret masked or asked."""
    state = next((c for c in result.changed if c.startswith("flow")), "flow unchanged")
    lines = [
        f"webhook:   {result.webhook_uri} (POST)"
        + (" [updated]" if "webhook" in result.changed else ""),
        f"flow:      {flow_name} {result.flow_id} [{state.removeprefix('flow ')}]",
        f"           answer, then fetch POST {masked_fetch_url(public_url, fetch_token)}",
    ]
    if "direct hash" in result.changed:
        lines.append("           the flow had no Direct Hash: regenerated")
    lines += [f"note:      {note}" for note in result.notes]
    secret = result.webhook_secret
    if not secret:
        lines.append(
            "secret:    none: VoIPBin sends events unsigned; set VOIPBIN_ALLOW_UNSIGNED=true"
        )
    elif show_secret:
        lines.append(f"VOIPBIN_WEBHOOK_SECRET={secret}")
    else:
        lines.append(
            f"secret:    {mask(secret)} (set VOIPBIN_WEBHOOK_SECRET to it; --show-secret prints it)"
        )
    changes = ", ".join(result.changed) if result.changed else "none, already set up"
    lines += [f"changed:   {changes}", f"SIP URI:   {result.uri}"]
    return lines


def error_line(error: Exception, *, api_base: str, access_key: str) -> str:
    """One line for the operator; the accesskey never appears in it."""
    if isinstance(error, VoipbinError) and error.status == 401:
        text = f"VoIPBin refused the accesskey ({error.reason}): check VOIPBIN_ACCESS_KEY"
    elif isinstance(error, VoipbinError):
        text = f"VoIPBin refused the request: {error}"
    elif isinstance(error, VoipbinUnreachable):
        text = f"cannot reach VoIPBin at {api_base} ({error}); is `make run` running?"
    else:
        text = str(error)
    return "error: " + (text.replace(access_key, "***") if access_key else text)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point of `switchboard voipbin`; returns the exit code."""
    return asyncio.run(_main(args, out or sys.stdout, err or sys.stderr))


async def _main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = VoipbinToolSettings()
    client = settings.client()
    try:
        if args.action == "setup":
            return await _setup(args, settings, client, out)
        placed = await place_call(
            client,
            to=args.to,
            source=args.source or settings.voipbin_source_number,
            flow_name=args.flow_name,
        )
        print(f"call {placed.call_id} to {args.to} (flow {placed.flow_id})", file=out)
        return 0
    except (VoipbinError, VoipbinUnreachable, SetupError, ValueError) as error:
        key = settings.voipbin_access_key.get_secret_value()
        print(error_line(error, api_base=settings.api_base, access_key=key), file=err)
        return 1
    finally:
        await client.aclose()


async def _setup(
    args: argparse.Namespace, settings: VoipbinToolSettings, client: VoipbinClient, out: TextIO
) -> int:
    public_url = args.public_url or settings.public_base_url
    if not public_url or not public_url.startswith(("http://", "https://")):
        raise SetupError("give --public-url https://... (or set PUBLIC_BASE_URL)")
    token = settings.voipbin_fetch_token.get_secret_value()
    result = await ensure_setup(
        client, public_url=public_url, fetch_token=token, flow_name=args.flow_name
    )
    report = setup_report(
        result,
        flow_name=args.flow_name,
        public_url=public_url,
        fetch_token=token,
        show_secret=args.show_secret,
    )
    print("\n".join(report), file=out)
    return 0
