"""An `OpsEmitter` stand-in for adapters built inside a test: it records what they report.

The ops topic is observation only; tests assert on the effects (at a provider fake, in
Redis) and use these records to see which path was taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.contracts import DeliveryReceipt, Lifecycle


@dataclass
class RecordingOps:
    """Records lifecycle events and delivery receipts instead of publishing them."""

    events: list[tuple[Lifecycle, dict[str, Any]]] = field(default_factory=list)
    receipts: list[DeliveryReceipt] = field(default_factory=list)

    async def emit(self, step: Lifecycle, **fields: Any) -> None:
        self.events.append((step, fields))

    async def receipt(self, receipt: DeliveryReceipt) -> None:
        self.receipts.append(receipt)

    def steps(self) -> list[Lifecycle]:
        """The lifecycle steps reported, in order."""
        return [step for step, _ in self.events]

    def of(self, step: Lifecycle) -> list[dict[str, Any]]:
        """The fields of every event of one step."""
        return [fields for s, fields in self.events if s is step]
