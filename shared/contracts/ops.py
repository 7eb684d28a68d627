"""Events on the ops topic (lifecycle, delivery receipts) and on dead-letter topics."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from shared.contracts.common import Event
from shared.contracts.profile import ChannelName


class Stage(StrEnum):
    """Which service emitted an ops event."""

    INGRESS = "ingress"
    BRAIN = "brain"
    EGRESS = "egress"


class Lifecycle(StrEnum):
    """Steps a message goes through; one ops event each."""

    RECEIVED = "received"
    PUBLISHED = "published"
    DEDUPED = "deduped"
    LOCK_WAIT = "lock_wait"
    COLLECTED = "collected"
    """SMS double texting: this message joined the turn of an earlier one."""
    INTERRUPTED = "interrupted"
    """Voice barge-in: a newer utterance cancelled this turn's answer."""
    FENCED = "fenced"
    """A worker that lost its conversation lock was refused a write or a reply."""
    LLM_START = "llm_start"
    LLM_END = "llm_end"
    REPLY_EMITTED = "reply_emitted"
    DELIVERED = "delivered"
    QUEUED = "queued"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    REJECTED = "rejected"


class LifecycleEvent(Event):
    """One step of one message, for dashboards and tracing. Carries no message text."""

    type: Literal["lifecycle"] = "lifecycle"
    stage: Stage
    step: Lifecycle
    instance_id: str
    channel: ChannelName | None = None
    conversation_id: str | None = None
    message_id: str | None = Field(default=None, description="Provider message id, if any.")
    reply_id: str | None = None
    duration_ms: float | None = None
    reason: str | None = Field(default=None, description="Why, for failures and rejections.")
    attributes: dict[str, Any] = Field(default_factory=dict)
    traceparent: str | None = None


class DeliveryStatus(StrEnum):
    """Delivery states; they only move forward (see `rank`)."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"

    @property
    def rank(self) -> int:
        """Order used to refuse backward moves (e.g. `delivered` → `sent`)."""
        return _RANK[self]


_RANK = {
    DeliveryStatus.ACCEPTED: 0,
    DeliveryStatus.QUEUED: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.FAILED: 3,
    DeliveryStatus.UNDELIVERED: 3,
    DeliveryStatus.DELIVERED: 4,
    DeliveryStatus.READ: 5,
}


class DeliveryReceipt(Event):
    """What happened to one reply at the provider or the browser."""

    type: Literal["receipt"] = "receipt"
    reply_id: str
    conversation_id: str
    channel: ChannelName
    status: DeliveryStatus
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


OpsEvent = Annotated[LifecycleEvent | DeliveryReceipt, Field(discriminator="type")]
"""Anything published on the ops topic; `type` tells which."""


class DeadLetter(Event):
    """A message that could not be processed, parked with its reason. Replayable."""

    stage: Stage
    source_topic: str
    partition: int
    offset: int
    key: str | None = None
    payload: str = Field(description="The original value, UTF-8 (invalid bytes replaced).")
    headers: dict[str, str] = Field(default_factory=dict)
    reason: str = Field(description="Short machine-readable reason, e.g. `invalid_event`.")
    error: str = Field(description="Human-readable detail, without secrets or message text.")
    attempts: int = 1
