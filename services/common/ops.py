"""Ops topic emitter: every stage reports each step of each message.

Ops events are observations, not effects: publishing one never blocks or fails a turn. They
go out without waiting for the broker's acknowledgement; while Kafka is down they are dropped
at once (counted, not logged per event: the outage itself is logged once by the producer).
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Counter

from services.common.producer import KafkaProducer
from shared.contracts import DeliveryReceipt, Lifecycle, LifecycleEvent, Stage
from shared.logs import get_logger

log = get_logger("ops")

OPS_EVENTS = Counter("switchboard_ops_events_total", "Lifecycle events emitted", ["stage", "step"])
OPS_DROPPED = Counter(
    "switchboard_ops_events_dropped_total", "Ops events dropped because Kafka could not take them"
)
QUEUE_TIMEOUT_S = 1.0
"""Longest an ops event may wait for room in the producer's buffer before it is dropped."""


class OpsEmitter:
    """Publishes lifecycle events and receipts of one service instance."""

    def __init__(self, producer: KafkaProducer, topic: str, stage: Stage, instance_id: str) -> None:
        self._producer = producer
        self._topic = topic
        self._stage = stage
        self._instance_id = instance_id

    async def emit(self, step: Lifecycle, **fields: Any) -> None:
        """Report one step; `fields` are `LifecycleEvent` fields (no message text)."""
        event = LifecycleEvent(
            stage=self._stage, step=step, instance_id=self._instance_id, **fields
        )
        OPS_EVENTS.labels(self._stage.value, step.value).inc()
        await self._send(event.model_dump_json().encode(), event.conversation_id, "lifecycle")

    async def receipt(self, receipt: DeliveryReceipt) -> None:
        """Report a delivery receipt."""
        await self._send(receipt.model_dump_json().encode(), receipt.conversation_id, "receipt")

    async def _send(self, body: bytes, key: str | None, kind: str) -> None:
        if not self._producer.usable:
            OPS_DROPPED.inc()
            return
        try:
            await asyncio.wait_for(
                self._producer.publish(
                    body,
                    self._topic,
                    key=key.encode() if key else None,
                    headers={"content-type": "application/json", "sb-ops-type": kind},
                    no_confirm=True,
                ),
                QUEUE_TIMEOUT_S,
            )
        except Exception as exc:  # an observation must never break the effect it observes
            OPS_DROPPED.inc()
            log.debug("ops.emit.failed", error=type(exc).__name__)
