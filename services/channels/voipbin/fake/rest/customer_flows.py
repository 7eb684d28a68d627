"""REST endpoints: the customer (webhook settings) and flows (with Direct Hashes)."""

from __future__ import annotations

from typing import Any

from services.channels.voipbin.fake.actions import checked_actions
from services.channels.voipbin.fake.errors import bad_request
from services.channels.voipbin.fake.rest.fields import list_page, optional_uuid, text_field
from services.channels.voipbin.fake.rest.request import Handler

_WEBHOOK_METHODS = frozenset({"POST", "PUT", "GET", "DELETE"})


def customer_fields(body: dict[str, Any]) -> dict[str, str]:
    names = ("name", "detail", "email", "phone_number", "address", "webhook_uri")
    fields = {name: text_field(body, name) for name in names if name in body}
    if "webhook_method" in body:
        method = text_field(body, "webhook_method").upper()
        if method not in _WEBHOOK_METHODS:
            raise bad_request("webhook_method must be POST, PUT, GET or DELETE")
        fields["webhook_method"] = method
    return fields


def _flow_fields(body: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]], str | None]:
    actions = checked_actions(body.get("actions"))
    on_complete = optional_uuid(body.get("on_complete_flow_id"), "on_complete_flow_id")
    return text_field(body, "name"), text_field(body, "detail"), actions, on_complete


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/customer", lambda f, c: (200, f.customer(with_secret=True))),
    ("PUT", "/customer", lambda f, c: (200, f.update_customer(customer_fields(c.body())))),
    ("POST", "/flows", lambda f, c: (200, f.create_flow(*_flow_fields(c.body())))),
    ("GET", "/flows", lambda f, c: (200, list_page(f.flows(), c.query))),
    ("GET", "/flows/{id}", lambda f, c: (200, f.flow(c.id()))),
    ("PUT", "/flows/{id}", lambda f, c: (200, f.update_flow(c.id(), *_flow_fields(c.body())))),
    ("DELETE", "/flows/{id}", lambda f, c: (200, f.delete_flow(c.id()))),
    (
        "POST",
        "/flows/{id}/direct-hash-regenerate",
        lambda f, c: (200, f.regenerate_direct_hash(c.id())),
    ),
]
