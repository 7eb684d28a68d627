"""The streamed answer's fast path: each part straight from the brain to the holder's inbox.

A reply in STREAM mode (VAPI's custom LLM) has a caller waiting for its first words. Its
reliable path is the brief's: the brain publishes the part on the channel's reply topic,
egress looks up the holder of the request and appends a `StreamPart` to that instance's
inbox. That path crosses Kafka twice (the brain's acks=all publish, egress's poll) and
costs about a third of the first chunk's overhead (docs/benchmarks.md, "VAPI custom LLM").

With the relay on (`BRAIN_STREAM_DIRECT`, the default) the brain also appends the same
entry to the inbox named by the reply mode's `reply_to` (the instance that published the
request), at the moment it publishes. Nothing else changes:

- the reply topic still gets every part, and egress still forwards it, so a holder that
  missed the direct copy (Redis hiccup, a retried request now held by another instance)
  still gets it; the holder keeps the first copy of each part index (`HeldStream.add`);
- the relay is best effort: a failure is counted and logged once per window, never raised,
  so it can neither fail nor slow a turn beyond one Redis round trip;
- only what egress would hand the holder is relayed (`stream_entry`): parts (with `final`
  and `end_call`) and STOP (barge-in), in STREAM mode only, at the moment the brain
  publishes them: a sentence after its lease was extended, the final part after the turn's
  fenced commit. A worker that lost the lock relays nothing more than it publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter
from redis.exceptions import RedisError

from services.common.inbox import InboxWriter
from shared.contracts import Reply, ReplyKind, ReplyModeKind
from shared.contracts.inbox import InboxEntry, StreamPart, StreamStop
from shared.logs import ThrottledLog, get_logger

log = get_logger("stream_relay")
_relay_failed = ThrottledLog(log, "stream_relay.failed", every_s=60.0)

STREAM_RELAYED = Counter(
    "switchboard_stream_relayed_total",
    "Streamed parts handed straight to the holder's inbox, by outcome",
    ["outcome"],
)


def stream_entry(reply: Reply) -> InboxEntry | None:
    """The inbox entry the holder of a STREAM reply gets for it, if any.

    One mapping for both paths (egress's forward and the brain's relay), so the holder sees
    the same entry whichever copy comes first.
    """
    mode = reply.reply
    if mode.kind is not ReplyModeKind.STREAM or not mode.correlation_id:
        return None
    if reply.kind is ReplyKind.STOP:
        return StreamStop(correlation_id=mode.correlation_id)
    if reply.kind is not ReplyKind.MESSAGE:
        return None
    return StreamPart(
        correlation_id=mode.correlation_id,
        reply_id=reply.reply_id,
        part=reply.part,
        text=reply.text,
        final=reply.final,
        end_call=reply.end_call,
    )


@dataclass(frozen=True)
class Relayed:
    """One entry for one holder's inbox."""

    holder: str
    entry: InboxEntry


class StreamRelay:
    """Hands STREAM replies to the inbox of the instance that published their request."""

    def __init__(self, inbox: InboxWriter) -> None:
        self._inbox = inbox

    @staticmethod
    def route(reply: Reply) -> Relayed | None:
        """Where and what `post` hands over for `reply`: a STREAM part or stop whose request
        has a holder; None for every other reply."""
        entry = stream_entry(reply)
        holder = reply.reply.reply_to
        return Relayed(holder, entry) if entry is not None and holder else None

    async def post(self, relayed: Relayed) -> None:
        """Append the entry to the holder's inbox; never raises for Redis."""
        try:
            await self._inbox.post(relayed.holder, relayed.entry)
        except (RedisError, OSError, TimeoutError) as exc:
            STREAM_RELAYED.labels("failed").inc()
            _relay_failed.warning(error=type(exc).__name__)
            return
        STREAM_RELAYED.labels("posted").inc()
