"""VapiOutput: carries out the brain's replies on VAPI calls (docs/vapi.md).

`Reply.address` is the VAPI call id. By the reply's mode:

- STREAM (an answer a custom-LLM request is streaming): each part goes to the ingress
  instance holding that request, found by the reply mode's `correlation_id` (a retried
  request may be held elsewhere than the first). Parts are forwarded every time they come,
  redeliveries included: the holder keeps the first of each index. No holder: the request
  is over and the part is dropped (ops event).
- SYNC (the greeting `assistant-request` waits for): a `HeldAnswer` to `reply_to`.
- ASYNC (the brain speaking outside an LLM turn): Live Call Control `say`.

STOP (barge-in) tells the holder to stop streaming; OPEN and CLOSE need nothing here.
`end_call` ends the call through Live Call Control once no stream of the call is in flight
and the sentences handed over have had time to be spoken (an estimate at the channel's
speaking rate, at most `HANGUP_WAIT_MAX_S`: VAPI hangs up at once on `end-call`). VAPI is
reported to break a stream a control message arrives during.

Control messages are sent once per reply (`VapiCalls.done`), fenced per call (a reply of a
worker that lost the conversation lock is refused), and never to a call that has ended.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from prometheus_client import Counter

from services.channels.vapi.control import ControlError, InvalidControlUrl, VapiControl
from services.channels.vapi.profile import NAME
from services.channels.vapi.store import VapiCall, VapiCalls
from services.common.consuming import PermanentFailure
from services.common.inbox import InboxWriter
from services.common.ops import OpsEmitter
from services.common.stream_relay import stream_entry
from shared.contracts import Lifecycle, Reply, ReplyKind, ReplyModeKind
from shared.contracts.inbox import HeldAnswer, StreamStop
from shared.logs import get_logger

log = get_logger("egress.vapi")

VAPI_CONTROL = Counter(
    "switchboard_vapi_control_total", "Live Call Control messages sent", ["action"]
)

SAY = "say"
END_CALL = "end_call"
HANGUP_WAIT_MAX_S = 10.0
"""Longest wait for the last sentences to be heard before an ending call is hung up."""
STREAM_END_WAIT_S = 1.0
"""How long `end_call` waits for the call's stream to end before asking to be retried: the
final part was just handed to the holder, which closes the stream at once."""
_POLL_S = 0.05


class StreamInFlight(Exception):
    """A custom-LLM stream of the call is still open: retry the control message later."""


class VapiOutput:
    """The outbound adapter of VAPI voice."""

    channel = NAME

    def __init__(
        self,
        *,
        calls: VapiCalls,
        control: VapiControl,
        inbox: InboxWriter,
        ops: OpsEmitter,
        stream_end_wait_s: float = STREAM_END_WAIT_S,
        speech_chars_per_s: float = 15.0,
        hangup_wait_max_s: float = HANGUP_WAIT_MAX_S,
    ) -> None:
        self._calls = calls
        self._control = control
        self._inbox = inbox
        self._ops = ops
        self._stream_end_wait_s = stream_end_wait_s
        self._chars_per_s = speech_chars_per_s
        self._hangup_wait_max_s = hangup_wait_max_s

    async def run(self) -> None:
        """Nothing in the background."""
        return None

    async def close(self) -> None:
        """Close the control client."""
        await self._control.aclose()

    async def deliver(self, reply: Reply) -> None:
        """Carry out `reply`; raise to have it retried, `PermanentFailure` to park it."""
        if reply.kind is ReplyKind.STOP:
            await self._stop(reply)
            return
        if reply.kind is not ReplyKind.MESSAGE:
            return  # OPEN / CLOSE: VAPI runs the call's sessions itself
        mode = reply.reply.kind
        if mode is ReplyModeKind.STREAM:
            await self._forward_part(reply)
        elif mode is ReplyModeKind.SYNC:
            await self._answer_held(reply)
        elif reply.text.strip():
            await self._control_once(reply, SAY)
            if reply.end_call and await self._calls.done(reply.reply_id, SAY):
                return  # said with endCallAfterSpoken: the call ends after these words
        if reply.end_call:
            await self._control_once(reply, END_CALL)

    # -- the holder of the request -------------------------------------------------------

    async def _forward_part(self, reply: Reply) -> None:
        correlation_id = reply.reply.correlation_id or ""
        holder = await self._calls.holder_of(correlation_id)
        if holder is None:
            await self._ops.emit(
                Lifecycle.REJECTED,
                reason="stream_not_held",
                attributes={"part": reply.part},
                **_ids(reply),
            )
            return
        part = stream_entry(reply)  # the same entry the brain's relay may have sent first
        if part is None:
            return
        await self._inbox.post(holder, part)
        if text := reply.text.strip():
            speech_ms = int(len(text) / self._chars_per_s * 1000)
            await self._calls.add_speech(reply.address, _now_ms(), speech_ms)
        await self._ops.emit(
            Lifecycle.QUEUED,
            attributes={"holder": holder, "via": "stream", "part": reply.part},
            **_ids(reply),
        )

    async def _answer_held(self, reply: Reply) -> None:
        holder = reply.reply.reply_to or ""
        answer = HeldAnswer(
            correlation_id=reply.reply.correlation_id or "",
            reply_id=reply.reply_id,
            body=json.dumps({"text": reply.text}),
        )
        await self._inbox.post(holder, answer)
        await self._ops.emit(
            Lifecycle.QUEUED, attributes={"holder": holder, "via": "held"}, **_ids(reply)
        )

    async def _stop(self, reply: Reply) -> None:
        """Barge-in: the holder of the interrupted answer stops streaming it."""
        correlation_id = reply.reply.correlation_id
        if reply.reply.kind is ReplyModeKind.STREAM and correlation_id:
            holder = await self._calls.holder_of(correlation_id)
            if holder is not None:
                await self._inbox.post(holder, StreamStop(correlation_id=correlation_id))
        await self._ops.emit(Lifecycle.INTERRUPTED, **_ids(reply))

    # -- Live Call Control ----------------------------------------------------------------

    async def _control_once(self, reply: Reply, step: str) -> None:
        """Say the reply or end the call, once per reply, fenced, outside any stream."""
        call_id = reply.address
        if await self._calls.done(reply.reply_id, step):
            await self._ops.emit(Lifecycle.DEDUPED, attributes={"step": step}, **_ids(reply))
            return
        call = await self._calls.get(call_id)
        if call.ended:
            log.info("egress.vapi.call_over", call_id=call_id, step=step)
            await self._ops.emit(
                Lifecycle.REJECTED, reason="call_ended", attributes={"step": step}, **_ids(reply)
            )
            return
        if not call.control_url:
            raise PermanentFailure("vapi_no_control_url", "the call's control URL is unknown")
        await self._wait_for_no_stream(call_id)
        if step == END_CALL:
            await self._wait_until_spoken(call.speaking_until_ms)
        if not await self._calls.accept_fence(call_id, reply.fence):
            await self._ops.emit(Lifecycle.FENCED, reason="stale_fencing_token", **_ids(reply))
            return
        try:
            await self._send(call, reply, step)
        except InvalidControlUrl as exc:
            raise PermanentFailure("vapi_bad_control_url", str(exc)) from None
        except ControlError as exc:
            if exc.call_gone:
                await self._calls.mark_ended(call_id, "control_url_gone")
                await self._ops.emit(
                    Lifecycle.REJECTED,
                    reason="call_ended",
                    attributes={"step": step},
                    **_ids(reply),
                )
                return
            if exc.retryable:
                raise
            raise PermanentFailure(f"vapi_control_{exc.status}", str(exc)) from None
        await self._calls.mark_done(reply.reply_id, step)
        VAPI_CONTROL.labels(step).inc()
        attributes: dict[str, Any] = {"via": step, "part": reply.part}
        if reply.end_call:
            attributes["hangup"] = True
        await self._ops.emit(Lifecycle.DELIVERED, attributes=attributes, **_ids(reply))

    async def _send(self, call: VapiCall, reply: Reply, step: str) -> None:
        if step == SAY:
            # A whole answer that ends the call: VAPI hangs up once it has been spoken.
            await self._control.say(
                call.control_url, reply.text.strip(), end_call_after_spoken=reply.end_call
            )
        else:
            await self._control.end_call(call.control_url)

    async def _wait_for_no_stream(self, call_id: str) -> None:
        """Return once no custom-LLM stream of the call is open; raise `StreamInFlight` when
        one still is after a short wait (`process_reliably` retries with backoff)."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._stream_end_wait_s
        while await self._calls.streaming(call_id):
            if loop.time() >= give_up_at:
                raise StreamInFlight("a custom-LLM stream of the call is in flight")
            await asyncio.sleep(_POLL_S)

    async def _wait_until_spoken(self, speaking_until_ms: int) -> None:
        """Let the last sentences be heard before hanging up (VAPI ends a call at once on
        `end-call`): wait for the speech estimate, at most `hangup_wait_max_s`."""
        wait_s = min((speaking_until_ms - _now_ms()) / 1000, self._hangup_wait_max_s)
        if wait_s > 0:
            await asyncio.sleep(wait_s)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ids(reply: Reply) -> dict[str, Any]:
    return {
        "channel": NAME,
        "conversation_id": reply.conversation_id,
        "reply_id": reply.reply_id,
    }
