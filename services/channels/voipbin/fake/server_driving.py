"""FakeVoipbinServer, part 2: driving VoIPBin's side (calls, webhook events, fetch)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from services.channels.voipbin.fake.config import CallStatus
from services.channels.voipbin.fake.controls import dial_direct_hash
from services.channels.voipbin.fake.events import deliver_event, speech_data, transcript_data
from services.channels.voipbin.fake.fetch import FetchResult, fetch_actions
from services.channels.voipbin.fake.rest.customer_flows import customer_fields
from services.channels.voipbin.fake.server_inspection import ServerInspection
from services.channels.voipbin.fake.wire import address_of


class ServerDriving(ServerInspection):
    """Dial, add and move calls; emit signed webhook events; run ``fetch`` actions."""

    def set_webhook(self, uri: str, method: str = "POST") -> dict[str, Any]:
        """Set the customer webhook as ``PUT /customer`` would."""
        return self.state.update_customer(
            customer_fields({"webhook_uri": uri, "webhook_method": method})
        )

    def clear_direct_hash(self, flow_id: str) -> dict[str, Any]:
        """Empty a flow's Direct Hash (clients must regenerate it)."""
        return self.state.clear_direct_hash(flow_id)

    def dial(
        self, target: str, source: str = "+15551234567", *, status: CallStatus = "progressing"
    ) -> dict[str, Any]:
        """A caller dials a Direct Hash (``sip:direct.x@sip.voipbin.net`` or ``direct.x``):
        an incoming call running that flow. :class:`ApiError` 404 if the hash routes nowhere."""
        return dial_direct_hash(self.state, target, address_of(source), status)

    def add_call(
        self,
        source: str = "+15551234567",
        destination: str = "+15550000000",
        *,
        flow_id: str | None = None,
        direction: Literal["incoming", "outgoing"] = "incoming",
        status: CallStatus = "progressing",
    ) -> dict[str, Any]:
        """Create a call as if it had reached VoIPBin (``+`` numbers are tel, else sip)."""
        return self.state.add_call(
            source=address_of(source),
            destination=address_of(destination),
            flow_id=flow_id,
            direction=direction,
            status=status,
        )

    def set_call_status(
        self, call_id: str, status: CallStatus, *, emit: bool = False
    ) -> dict[str, Any]:
        """Move a call on (a ``hangup`` is by the remote side); ``emit`` sends ``call_<status>``."""
        call = self.state.set_call_status(call_id, status)
        if emit:
            self.emit(f"call_{status}", call)
        return call

    def emit(
        self,
        event_type: str,
        data: Any,
        *,
        uri: str | None = None,
        method: str | None = None,
        sign: bool = True,
        signature: str | None = None,
    ) -> dict[str, Any]:
        """POST ``{"type", "data"}`` to the customer webhook, signed; the last attempt's record.

        ``signature`` replaces the header value (forgeries); ``sign=False`` leaves it out.
        """
        return deliver_event(
            self.state, event_type, data, uri=uri, method=method, sign=sign, signature=signature
        )

    async def aemit(self, event_type: str, data: Any, **options: Any) -> dict[str, Any]:
        """:meth:`emit` off the event loop."""
        return await asyncio.to_thread(self.emit, event_type, data, **options)

    def emit_call(self, call_id: str, event_type: str | None = None) -> dict[str, Any]:
        """Emit a call event (default ``call_<status>``) with the stored call as data."""
        call = self.call(call_id)
        return self.emit(event_type or f"call_{call['status']}", call)

    def emit_transcribe(self, transcribe_id: str, event_type: str | None = None) -> dict[str, Any]:
        """Emit a transcribe event (default ``transcribe_<status>``) with the stored transcribe."""
        transcribe = self.transcribe(transcribe_id)
        return self.emit(event_type or f"transcribe_{transcribe['status']}", transcribe)

    def emit_speaking(self, speaking_id: str, event_type: str | None = None) -> dict[str, Any]:
        """Emit ``speaking_started`` (or ``speaking_stopped`` once stopped) with the session."""
        speaking = self.speaking(speaking_id)
        default = "speaking_stopped" if speaking["status"] == "stopped" else "speaking_started"
        return self.emit(event_type or default, speaking)

    def emit_transcript(
        self,
        transcribe_id: str,
        message: str,
        *,
        direction: Literal["in", "out"] = "in",
        offset_s: float = 0.0,
    ) -> dict[str, Any]:
        """Emit ``transcript_created`` (works for transcribe ids the fake does not know too)."""
        data = transcript_data(
            transcribe_id,
            message,
            direction=direction,
            customer_id=self.state.config.customer_id,
            offset_s=offset_s,
        )
        return self.emit("transcript_created", data)

    def emit_speech(
        self,
        transcribe_id: str,
        phase: Literal["started", "interim", "ended"] = "started",
        *,
        message: str = "",
        direction: Literal["in", "out"] = "in",
    ) -> dict[str, Any]:
        """Emit ``transcribe_speech_<phase>`` (barge-in signals) for a transcribe."""
        streaming_id = self.state.streaming_id(transcribe_id)
        data = speech_data(
            transcribe_id, message=message, direction=direction, streaming_id=streaming_id
        )
        return self.emit(f"transcribe_speech_{phase}", data)

    def fetch(
        self,
        url: str,
        *,
        method: str = "POST",
        activeflow_id: str | None = None,
        reference_id: str | None = None,
        timeout: float | None = None,
    ) -> FetchResult:
        """Run a ``fetch`` action against ``url`` (see :func:`fetch_actions`) and record it."""
        result = fetch_actions(
            url,
            method=method,
            activeflow_id=activeflow_id,
            reference_id=reference_id,
            timeout=timeout,
        )
        self.state.record_fetch(result.to_dict())
        return result

    async def afetch(self, url: str, **options: Any) -> FetchResult:
        """:meth:`fetch` off the event loop."""
        return await asyncio.to_thread(self.fetch, url, **options)
