"""W3C trace context (`traceparent`) for events and Kafka headers.

We do not depend on an OpenTelemetry SDK; we only create and propagate valid `traceparent`
values so any tracer downstream can stitch a message's path together.
"""

from __future__ import annotations

import re
import secrets

from shared.contracts.common import TraceContext

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_trace() -> TraceContext:
    """Start a new trace (sampled)."""
    return TraceContext(traceparent=f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01")


def child_of(parent: TraceContext | None) -> TraceContext:
    """A new span in the parent's trace, or a new trace when there is no valid parent."""
    if parent is None:
        return new_trace()
    match = _TRACEPARENT.match(parent.traceparent)
    if not match:
        return new_trace()
    trace_id, _, flags = match.groups()
    return TraceContext(
        traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-{flags}", tracestate=parent.tracestate
    )


def from_headers(headers: dict[str, str] | None) -> TraceContext | None:
    """Read trace context from (Kafka or HTTP) headers, if valid."""
    if not headers:
        return None
    value = headers.get("traceparent")
    if not value or not _TRACEPARENT.match(value):
        return None
    return TraceContext(traceparent=value, tracestate=headers.get("tracestate"))


def to_headers(trace: TraceContext | None) -> dict[str, str]:
    """Headers that carry `trace`."""
    if trace is None:
        return {}
    headers = {"traceparent": trace.traceparent}
    if trace.tracestate:
        headers["tracestate"] = trace.tracestate
    return headers
