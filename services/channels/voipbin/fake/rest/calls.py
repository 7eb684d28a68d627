"""REST endpoints: calls (create, with groupcalls for tel/extension), hangup, talk."""

from __future__ import annotations

from typing import Any

from services.channels.voipbin.fake.actions import checked_actions
from services.channels.voipbin.fake.errors import bad_request
from services.channels.voipbin.fake.rest.fields import (
    checked_address,
    checked_variables,
    list_page,
    optional_uuid,
    text_field,
)
from services.channels.voipbin.fake.rest.request import ApiCall, Handler
from services.channels.voipbin.fake.state import FakeVoipbinState


def _create_calls(fake: FakeVoipbinState, call: ApiCall) -> tuple[int, Any]:
    body = call.body()
    source = checked_address(body.get("source"), "source")
    destinations = body.get("destinations")
    if not isinstance(destinations, list) or not destinations:
        raise bad_request("destinations must be a non-empty array of Addresses")
    addresses = [checked_address(d, f"destinations[{i}]") for i, d in enumerate(destinations)]
    flow_id = optional_uuid(body.get("flow_id"), "flow_id")
    actions = checked_actions(body.get("actions"))  # checked even when flow_id wins
    if flow_id is None and not actions:
        raise bad_request("Either flow_id or actions is required.")
    if body.get("anonymous", "") not in ("", "yes", "no", "auto"):
        raise bad_request("anonymous must be yes, no or auto")
    checked_variables(body.get("variables"))
    return 200, fake.create_outbound_calls(source, addresses, flow_id)


def _talk(fake: FakeVoipbinState, call: ApiCall) -> tuple[int, Any]:
    call_id, body = call.id(), call.body()
    option = {key: text_field(body, key) for key in ("text", "language", "provider", "voice_id")}
    if not option["text"]:
        raise bad_request("text is required")
    if option["provider"] not in ("", "gcp", "aws"):
        raise bad_request("provider must be gcp or aws")
    fake.talk(call_id, option)
    return 200, None


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/calls", _create_calls),
    ("GET", "/calls", lambda f, c: (200, list_page(f.calls(), c.query))),
    ("GET", "/calls/{id}", lambda f, c: (200, f.call(c.id()))),
    ("POST", "/calls/{id}/hangup", lambda f, c: (200, f.hangup(c.id()))),
    ("POST", "/calls/{id}/talk", _talk),
]
