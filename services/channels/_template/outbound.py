"""Delivery of the brain's replies through the Template channel's provider.

Not written yet: every reply is parked at once with the reason `not_implemented` (a dead
letter, replayable once `deliver` is written), rather than retried or dropped silently.
"""

from __future__ import annotations

from services.channels._template.profile import (
    NAME,
)
from services.channels.sdk.plugin import NoBackgroundWork
from services.common.consuming import PermanentFailure
from services.common.ops import OpsEmitter
from shared.contracts import Reply

WHERE = "services/channels/_template/outbound.py"


class TemplateOutput(NoBackgroundWork):
    """The outbound adapter of the Template channel."""

    channel = NAME

    def __init__(self, ops: OpsEmitter) -> None:
        self._ops = ops

    async def deliver(self, reply: Reply) -> None:
        """Send `reply` once (idempotent per `reply_id`); raise to retry, `PermanentFailure`
        to park it."""
        raise PermanentFailure(
            "not_implemented",
            f"the {NAME} channel cannot deliver replies yet: write deliver() in {WHERE}",
        )
