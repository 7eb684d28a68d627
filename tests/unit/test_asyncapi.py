"""`docs/asyncapi.yaml` is generated from the topics and contracts and must stay equal to them."""

from typing import Any

import pytest
import yaml

from services.channels.registry import channel_names
from services.common.kafka import event_headers
from shared import asyncapi, schemas
from shared.contracts import InboundMessage, Reply, TraceContext
from shared.topics import Topics

pytestmark = pytest.mark.unit


def test_asyncapi_file_matches_the_code() -> None:
    assert asyncapi.ASYNCAPI_FILE.read_text(encoding="utf-8") == asyncapi.render(), (
        "docs/asyncapi.yaml is out of date: run `switchboard schemas export` and commit it"
    )


def test_the_yaml_reads_back_as_the_document() -> None:
    assert yaml.safe_load(asyncapi.render()) == asyncapi.build_document()


def test_every_topic_is_a_channel_carrying_its_contract() -> None:
    topics = Topics()
    carried = {
        channel["address"]: set(channel["messages"])
        for channel in asyncapi.build_document()["channels"].values()
    }
    assert carried == {
        topics.inbound: {"InboundMessage"},
        topics.replies("{channel}"): {"Reply"},
        topics.ops: {"OpsEvent"},
        topics.dlq_inbound: {"DeadLetter"},
        topics.dlq_replies: {"DeadLetter"},
    }
    assert set(topics.core()) < set(carried)


def test_reply_topic_is_parameterised_by_channel_with_the_built_in_ones_as_examples() -> None:
    channels = asyncapi.build_document("acme")["channels"]
    reply = next(channel for channel in channels.values() if "{channel}" in channel["address"])
    assert reply["address"] == "acme.reply.{channel}.v1"
    # Examples only: a new channel (VAPI, or a channel's own service) edits nothing in shared/.
    examples = reply["parameters"]["channel"]["examples"]
    assert examples and set(examples) <= set(channel_names())
    assert all(channel["address"].startswith("acme.") for channel in channels.values())


def test_payloads_are_the_models_json_schemas() -> None:
    document = asyncapi.build_document()
    components = document["components"]["schemas"]
    for name, expected in schemas.build_schemas().items():
        payload = document["components"]["messages"][name]["payload"]
        assert _inline(payload, components, asyncapi.SCHEMAS_REF) == _discriminators_as_names(
            _inline(expected, expected.get("$defs", {}), "#/$defs/")
        ), name


def test_every_reference_resolves() -> None:
    document = asyncapi.build_document()
    for ref in _refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]


def test_documented_headers_are_the_ones_pipeline_events_carry() -> None:
    trace = TraceContext(traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01", tracestate="a=b")
    inbound = InboundMessage(
        channel="sms", provider_message_id="SM1", address="+15551234567",
        conversation_id="conv_1", text="hi", trace=trace,
    )  # fmt: skip
    reply = Reply(
        reply_id="r1", in_reply_to="SM1", conversation_id="conv_1", channel="sms",
        address="+15551234567", text="hello", trace=trace,
    )  # fmt: skip
    messages = asyncapi.build_document()["components"]["messages"]
    for event in (inbound, reply):
        headers = messages[type(event).__name__]["headers"]
        sent = event_headers(event)
        assert set(sent) == set(headers["properties"])
        assert set(headers["required"]) <= set(sent)
        for name, schema in headers["properties"].items():
            assert schema.get("const", sent[name]) == sent[name], name


def _inline(schema: Any, definitions: dict[str, Any], prefix: str) -> Any:
    """`schema` with every `$ref` replaced by what it points at (siblings kept)."""
    if isinstance(schema, list):
        return [_inline(item, definitions, prefix) for item in schema]
    if not isinstance(schema, dict):
        return schema
    fields = {
        key: _inline(item, definitions, prefix) for key, item in schema.items() if key != "$defs"
    }
    ref = fields.pop("$ref", None)
    if ref is None:
        return fields
    assert ref.startswith(prefix), ref
    return {**_inline(definitions[ref.removeprefix(prefix)], definitions, prefix), **fields}


def _discriminators_as_names(schema: Any) -> Any:
    """Pydantic writes OpenAPI discriminator objects; AsyncAPI wants the property name."""
    if isinstance(schema, list):
        return [_discriminators_as_names(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    fields = {key: _discriminators_as_names(item) for key, item in schema.items()}
    if isinstance(fields.get("discriminator"), dict):
        fields["discriminator"] = fields["discriminator"]["propertyName"]
    return fields


def _refs(value: Any) -> list[str]:
    if isinstance(value, list):
        return [ref for item in value for ref in _refs(item)]
    if not isinstance(value, dict):
        return []
    own = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
    return own + [ref for item in value.values() for ref in _refs(item)]
