"""VAPI egress on the real Redis, with a tiny HTTP server standing in for calls' control
URLs: stream parts to the holder of the request, held answers, barge-in, and Live Call
Control (`say`, `end-call`) once per reply, fenced, never mid-stream, never to an ended
call, authenticated with the public key, retried on 429/5xx, and with no secret in logs."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr
from redis.asyncio import Redis
from structlog.testing import capture_logs

from services.channels.vapi.control import ControlError, VapiControl
from services.channels.vapi.outbound import StreamInFlight, VapiOutput
from services.channels.vapi.profile import NAME
from services.channels.vapi.settings import VapiSettings
from services.channels.vapi.store import VapiCalls
from services.common.backoff import RetryPolicy
from services.common.consuming import PermanentFailure
from services.common.inbox import InboxWriter, inbox_key
from shared.contracts import Lifecycle, Reply, ReplyKind, ReplyMode, ReplyModeKind, utcnow
from shared.contracts.inbox import HeldAnswer, InboxEntry, StreamPart, StreamStop
from tests.conformance.stack import serve
from tests.support.infra import Infra
from tests.support.ops import RecordingOps

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PUBLIC_KEY = "vapi-public-key-5d0c1f9e"
FAST_RETRY = RetryPolicy(max_attempts=4, base_s=0.01, cap_s=0.05, budget_s=5)
HOLDER = "ingress-holder"


@dataclass
class ControlServer:
    """Stands in for VAPI's per-call control URLs: records every request; answers with the
    queued statuses first, then 200."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{call_id}/control/{token}")
        async def control(call_id: str, token: str, request: Request) -> Response:
            self.requests.append(
                {
                    "call_id": call_id,
                    "token": token,
                    "at": time.monotonic(),
                    "authorization": request.headers.get("authorization"),
                    "content_type": request.headers.get("content-type"),
                    "json": json.loads(await request.body()),
                }
            )
            if self.statuses:
                status, headers = self.statuses.pop(0)
                return JSONResponse({"error": "no"}, status_code=status, headers=headers)
            return JSONResponse({"ok": True})

        return app

    def of(self, call_id: str) -> list[dict[str, Any]]:
        """The control messages (bodies) posted for one call."""
        return [r["json"] for r in self.requests if r["call_id"] == call_id]


@dataclass
class Rig:
    server: ControlServer
    redis: Redis
    namespace: str
    calls: VapiCalls
    ops: RecordingOps
    controls: list[VapiControl] = field(default_factory=list)

    def output(self, public_key: str | None = PUBLIC_KEY) -> VapiOutput:
        settings = VapiSettings(public_key=SecretStr(public_key) if public_key else None)
        control = VapiControl(settings, timeout_s=5.0, retry=FAST_RETRY)
        self.controls.append(control)
        return VapiOutput(
            calls=self.calls,
            control=control,
            inbox=InboxWriter(self.redis, self.namespace),
            ops=self.ops,  # type: ignore[arg-type]  # records what an OpsEmitter would emit
            stream_end_wait_s=0.2,
        )

    async def new_call(self) -> tuple[str, str]:
        """A live call with a control URL; returns (call id, the URL's secret token)."""
        call_id = str(uuid.uuid4())
        token = secrets.token_hex(8)
        await self.calls.remember(
            call_id,
            conversation_id=f"conv_{call_id[:8]}",
            control_url=f"{self.server.base_url}/{call_id}/control/{token}",
        )
        return call_id, token

    async def inbox(self, instance_id: str = HOLDER) -> list[InboxEntry]:
        entries: list[tuple[str, dict[str, str]]]
        entries = await self.redis.xrange(inbox_key(self.namespace, instance_id))  # type: ignore[assignment]  # decoded responses
        kinds: dict[str, type[InboxEntry]] = {
            t.kind: t for t in (StreamPart, StreamStop, HeldAnswer)
        }
        return [kinds[fields["kind"]].from_fields(fields) for _, fields in entries]


@pytest_asyncio.fixture
async def rig(infra: Infra, namespace: str, redis: Redis) -> AsyncIterator[Rig]:
    server = ControlServer()
    async with serve(server.app()) as base_url:
        server.base_url = base_url
        rig = Rig(server, redis, namespace, VapiCalls(redis, namespace), RecordingOps())
        yield rig
        for control in rig.controls:
            await control.aclose()


def reply(call_id: str, text: str = "", **overrides: Any) -> Reply:
    fields: dict[str, Any] = {
        "reply_id": uuid.uuid4().hex,
        "in_reply_to": f"{call_id}:turn:1",
        "conversation_id": f"conv_{call_id[:8]}",
        "channel": NAME,
        "address": call_id,
        "text": text,
        "fence": 1,
        **overrides,
    }
    return Reply(**fields)


def streamed(call_id: str, correlation_id: str) -> ReplyMode:
    return ReplyMode(
        kind=ReplyModeKind.STREAM,
        deadline_at=utcnow(),
        correlation_id=correlation_id,
        reply_to=HOLDER,
    )


# -- the holder of the custom-LLM request ------------------------------------------------------


async def test_stream_parts_go_to_the_holder_redeliveries_included(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    turn = f"{call_id}:turn:1"
    await rig.calls.hold_stream(turn, call_id, HOLDER, 30)
    output = rig.output()
    mode = streamed(call_id, turn)
    first = reply(call_id, "Hello there.", part=0, final=False, reply=mode)
    last = reply(call_id, "", part=1, final=True, reply=mode)
    for each in (first, first, last):  # part 0 redelivered: the holder keeps the first
        await output.deliver(each)

    entries = await rig.inbox()
    assert entries == [
        StreamPart(correlation_id=turn, reply_id=first.reply_id, part=0, text="Hello there."),
        StreamPart(correlation_id=turn, reply_id=first.reply_id, part=0, text="Hello there."),
        StreamPart(correlation_id=turn, reply_id=last.reply_id, part=1, final=True),
    ]
    assert not rig.server.requests, "parts never use Live Call Control"


async def test_a_part_nobody_holds_is_dropped_with_an_ops_event(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    part = reply(call_id, "Too late.", part=0, final=False, reply=streamed(call_id, "gone"))
    await rig.output().deliver(part)
    assert await rig.inbox() == []
    [rejected] = rig.ops.of(Lifecycle.REJECTED)
    assert rejected["reason"] == "stream_not_held" and rejected["reply_id"] == part.reply_id


async def test_a_stop_tells_the_holder_to_stop_streaming(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    turn = f"{call_id}:turn:2"
    await rig.calls.hold_stream(turn, call_id, HOLDER, 30)
    await rig.output().deliver(reply(call_id, kind=ReplyKind.STOP, reply=streamed(call_id, turn)))
    assert await rig.inbox() == [StreamStop(correlation_id=turn)]
    # A STOP of a barge-in signal itself (async mode) has no stream to stop: acknowledged.
    await rig.output().deliver(reply(call_id, kind=ReplyKind.STOP))
    assert len(await rig.inbox()) == 1
    assert not rig.server.requests


async def test_a_held_greeting_goes_to_the_holder_as_text(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    mode = ReplyMode(
        kind=ReplyModeKind.SYNC, deadline_at=utcnow(), correlation_id="greet-1", reply_to=HOLDER
    )
    greeting = reply(call_id, "Hi, thanks for calling!", reply=mode)
    await rig.output().deliver(greeting)
    assert await rig.inbox() == [
        HeldAnswer(
            correlation_id="greet-1",
            reply_id=greeting.reply_id,
            body=json.dumps({"text": "Hi, thanks for calling!"}),
        )
    ]
    assert not rig.server.requests


async def test_open_and_close_need_nothing(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    for kind in (ReplyKind.OPEN, ReplyKind.CLOSE):
        await rig.output().deliver(reply(call_id, kind=kind))
    assert not rig.server.requests and await rig.inbox() == []


# -- Live Call Control ---------------------------------------------------------------------------


async def test_an_async_reply_is_said_once_with_the_public_key(rig: Rig) -> None:
    call_id, token = await rig.new_call()
    output = rig.output()
    said = reply(call_id, "Your order has shipped.")
    await output.deliver(said)
    await output.deliver(said)  # redelivered: said once

    [request] = rig.server.requests
    assert request["token"] == token
    assert request["authorization"] == f"Bearer {PUBLIC_KEY}"
    assert request["content_type"] == "application/json"
    # The bare object, not the spec's {"message": ...} wrapper (providers.md §3.6).
    assert request["json"] == {
        "type": "say",
        "content": "Your order has shipped.",
        "endCallAfterSpoken": False,
    }
    assert [e["reply_id"] for e in rig.ops.of(Lifecycle.DEDUPED)] == [said.reply_id]
    [delivered] = rig.ops.of(Lifecycle.DELIVERED)
    assert delivered["attributes"]["via"] == "say"


async def test_no_public_key_no_authorization_header(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    await rig.output(public_key=None).deliver(reply(call_id, "Hello."))
    [request] = rig.server.requests
    assert request["authorization"] is None


async def test_a_whole_answer_that_ends_the_call_is_said_then_hung_up_by_vapi(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    await rig.output().deliver(reply(call_id, "Goodbye!", end_call=True))
    # One message: VAPI ends the call once the words are spoken (no end-call cutting them).
    assert rig.server.of(call_id) == [
        {"type": "say", "content": "Goodbye!", "endCallAfterSpoken": True}
    ]


async def test_end_call_waits_for_the_stream_to_finish(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    turn = f"{call_id}:turn:3"
    await rig.calls.hold_stream(turn, call_id, HOLDER, 30)
    output = rig.output()
    final = reply(call_id, "", part=2, final=True, end_call=True, reply=streamed(call_id, turn))

    # Stream still open: the part reaches the holder, the hangup asks to be retried.
    with pytest.raises(StreamInFlight):
        await output.deliver(final)
    assert not rig.server.requests
    assert await rig.inbox() == [
        StreamPart(correlation_id=turn, reply_id=final.reply_id, part=2, final=True, end_call=True)
    ]

    async def retried() -> None:  # what process_reliably does, with a short backoff
        while True:
            try:
                await output.deliver(final)
                return
            except StreamInFlight:
                await asyncio.sleep(0.05)

    retrying = asyncio.create_task(retried())
    await asyncio.sleep(0)  # the retry loop is running while the stream is open
    released_at = time.monotonic()
    await rig.calls.release_stream(turn, call_id)  # the holder streamed [DONE]
    await asyncio.wait_for(retrying, 30)

    [request] = rig.server.requests
    assert request["json"] == {"type": "end-call"}
    assert request["at"] >= released_at
    # A redelivery of the final part after the hangup: forwarded, not hung up again.
    await output.deliver(final)
    assert len(rig.server.requests) == 1


async def test_a_say_is_never_sent_mid_stream(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    await rig.calls.hold_stream(f"{call_id}:turn:1", call_id, HOLDER, 30)
    with pytest.raises(StreamInFlight):
        await rig.output().deliver(reply(call_id, "A reminder."))
    assert not rig.server.requests


async def test_a_stale_fencing_token_is_refused(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    output = rig.output()
    await output.deliver(reply(call_id, "From the current lock holder.", fence=7))
    await output.deliver(reply(call_id, "From a worker that lost the lock.", fence=3))
    assert [m["content"] for m in rig.server.of(call_id)] == ["From the current lock holder."]
    assert len(rig.ops.of(Lifecycle.FENCED)) == 1


async def test_an_ended_call_gets_no_control_messages(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    await rig.calls.mark_ended(call_id, "customer-ended-call")
    await rig.output().deliver(reply(call_id, "Anyone there?", end_call=True))
    assert not rig.server.requests
    assert {e["reason"] for e in rig.ops.of(Lifecycle.REJECTED)} == {"call_ended"}


async def test_a_control_url_that_is_gone_means_the_call_is_over(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    rig.server.statuses.append((404, {}))
    await rig.output().deliver(reply(call_id, "Still there?"))
    assert (await rig.calls.get(call_id)).ended
    assert {e["reason"] for e in rig.ops.of(Lifecycle.REJECTED)} == {"call_ended"}


async def test_429_and_5xx_are_retried_other_refusals_are_final(rig: Rig) -> None:
    call_id, _ = await rig.new_call()
    output = rig.output()
    rig.server.statuses += [(429, {"retry-after": "0"}), (503, {})]
    await output.deliver(reply(call_id, "Third time lucky."))
    assert len(rig.server.of(call_id)) == 3

    rig.server.statuses += [(500, {})] * FAST_RETRY.max_attempts
    with pytest.raises(ControlError) as failed:
        await output.deliver(reply(call_id, "Never heard."))
    assert failed.value.retryable  # process_reliably tries again later

    rig.server.statuses.append((400, {}))
    with pytest.raises(PermanentFailure) as refused:
        await output.deliver(reply(call_id, "Refused."))
    assert refused.value.reason == "vapi_control_400"


async def test_an_unknown_control_url_parks_the_reply(rig: Rig) -> None:
    call_id = str(uuid.uuid4())
    await rig.calls.remember(call_id, conversation_id="conv_x")
    with pytest.raises(PermanentFailure) as parked:
        await rig.output().deliver(reply(call_id, "Hello?"))
    assert parked.value.reason == "vapi_no_control_url"


async def test_no_secret_reaches_the_logs(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    call_id, token = await rig.new_call()
    rig.server.statuses += [(503, {})] * FAST_RETRY.max_attempts
    with (
        capture_logs() as logs,
        caplog.at_level(logging.DEBUG),
        pytest.raises(ControlError) as failed,
    ):
        await rig.output().deliver(reply(call_id, "Secret plans."))
    # Ours only: uvicorn's lines are the control server's, VAPI's side of the wire.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("uvicorn")]
    everything = json.dumps(logs, default=str) + "\n".join(ours) + str(failed.value)
    assert logs, "the retries are logged"
    assert any("POST" in line for line in ours), "httpx2's request lines are checked too"
    for secret in (token, PUBLIC_KEY, "Secret plans"):
        assert secret not in everything
