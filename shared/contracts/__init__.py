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
from shared.contracts.profile import (
    CHANNEL_NAME_PATTERN,
    ChannelName,
    ChannelProfile,
    IdentityRealm,
    Modality,
    TextFormat,
)
from shared.contracts.reply import Reply, ReplyKind, reply_id_for

__all__ = [
    "CHANNEL_NAME_PATTERN",
    "SCHEMA_VERSION",
    "Channel",
    "ChannelName",
    "ChannelProfile",
    "DeadLetter",
    "DeliveryReceipt",
    "DeliveryStatus",
    "Event",
    "IdentityRealm",
    "InboundMessage",
    "Lifecycle",
    "LifecycleEvent",
    "MessageKind",
    "Modality",
    "OpsEvent",
    "Reply",
    "ReplyKind",
    "ReplyMode",
    "ReplyModeKind",
    "Stage",
    "TextFormat",
    "TraceContext",
    "reply_id_for",
    "utcnow",
]
