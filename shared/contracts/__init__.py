"""The v1 event contracts. Import from here; JSON Schemas are in `shared/schemas/v1.json`."""

from shared.contracts.common import SCHEMA_VERSION, Channel, Event, TraceContext, utcnow
from shared.contracts.inbound import InboundMessage, MessageKind, ReplyMode, ReplyModeKind
from shared.contracts.ops import (
    DeadLetter,
    DeliveryReceipt,
    DeliveryStatus,
    Lifecycle,
    LifecycleEvent,
    OpsEvent,
    Stage,
)
from shared.contracts.reply import Reply, ReplyKind, reply_id_for

__all__ = [
    "SCHEMA_VERSION",
    "Channel",
    "DeadLetter",
    "DeliveryReceipt",
    "DeliveryStatus",
    "Event",
    "InboundMessage",
    "Lifecycle",
    "LifecycleEvent",
    "MessageKind",
    "OpsEvent",
    "Reply",
    "ReplyKind",
    "ReplyMode",
    "ReplyModeKind",
    "Stage",
    "TraceContext",
    "reply_id_for",
    "utcnow",
]
