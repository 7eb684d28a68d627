"""VAPI voice against the channel conformance suite (`tests/conformance/base.py`).

Goldens: services/channels/vapi/fixtures/. An inbound golden request is what VAPI posts:
`{"method", "path", "headers", "json"}`, the body written compactly as the fake VAPI writes
it. To the server URL (`/v1/vapi/events`) it is authenticated as `VAPI_AUTH_MODE` says by the
fake VAPI's own signer (`ServerAuth`, not the channel's `sign`); to the custom LLM
(`/v1/vapi/llm/chat/completions`) with the `custom-llm` credential's key as Bearer
(`vapi_wire.py`). A streamed answer is pinned as `frames`, one per server-sent event
(`{"data": <chunk>}`, the completion id and creation time written `<completion_id>` and
`<created>`); secrets in an answer are written `<server_secret>` and `<llm_key>`. No brain
runs for the inbound checks, so a turn held for an answer gets the filler, then the apology
at the stream deadline, and `assistant-request` the fallback greeting at its deadline (all
short here), which the goldens pin too.

The checks run in the default auth mode (`secret`, as the hostile-routes registry signs);
`test_every_auth_mode_refuses_forged_server_url_requests` repeats the forgeries of the
server-URL goldens in the bearer and HMAC modes.

Outbound, the fake VAPI records every request to a call's control URL on the wire, with its
answer (`status`) and whether a custom-LLM stream of the call was open then
(`during_stream`); answers for held requests (`HeldAnswer`, `StreamPart`, `StreamStop`) are
read from the holder's inbox. A golden's `call` says what the call is: `number`, `live`
(the fake knows it; default true), `ended` (a reason: ingress saw it end), and `streams`
(`{"correlation_id", "holder"}`: a custom-LLM request held while the replies come, which ends
as a holder's does, on the final part or a stop). `<call_id>` and `<public_key>` stand for
run-time values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from services.channels.sdk.plugin import ChannelPlugin
from services.channels.vapi.channel import VAPI, vapi_plugin
from services.channels.vapi.fake import DEV_PHONE_NUMBER_ID, FakeVapiServer
from services.channels.vapi.fake.calls import new_call
from services.channels.vapi.fake.resolve import llm_body
from services.channels.vapi.settings import EVENTS_PATH, LLM_BASE_PATH, VapiSettings
from services.channels.vapi.store import VapiCalls
from services.common.inbox import inbox_key
from services.ingress.identity import default_conversation_id
from shared.contracts import IdentityRealm
from tests.conformance.base import Capture, ChannelConformance, Copies, Deployment, integration
from tests.conformance.goldens import Outcome, golden_files, load, summary
from tests.conformance.stack import RawRecorder, normalized, substitute
from tests.conformance.vapi_wire import llm_credential, outcome_of, server_credential, wire_json
from tests.integration.test_hostile_http import PHONE, ROUTES, Route
from tests.support.infra import Infra
from tests.support.kafka import eventually, read_topic

LLM_PATH = f"{LLM_BASE_PATH}/chat/completions"
PUBLIC = "https://sb.example.org"
"""Where VAPI reaches ingress (the transient assistant's URLs)."""
INBOUND_DEADLINE_S = 3.0
"""How long a held custom-LLM request waits for the brain in the inbound checks (none runs):
short, since every hostile case with something to answer waits for it."""
FILLER_AFTER_MS = 100
"""The filler comes long before that deadline, whatever the machine's pace."""
PIPELINE_DEADLINE_S = 45.0
"""With the brain running: the first turn of a fresh namespace waits for consumer groups."""
COMMON_FORGERIES = ("forged", "crossed", "misplaced", "empty", "missing")

AUTH_MODES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "bearer": ({"auth_mode": "bearer"}, (*COMMON_FORGERIES, "wrong_prefix")),
    "bearer_bare_in_x_vapi_secret": (
        {"auth_mode": "bearer", "auth_header": "X-Vapi-Secret", "bearer_prefix": False},
        (*COMMON_FORGERIES, "wrong_prefix"),
    ),
    "hmac": ({"auth_mode": "hmac"}, (*COMMON_FORGERIES, "tampered", "stale", "future", "retimed")),
    "hmac_sha512_base64_prefixed_body_only": (
        {
            "auth_mode": "hmac",
            "hmac_algorithm": "sha512",
            "hmac_encoding": "base64",
            "hmac_prefix": "v1=",
            "hmac_payload": "{body}",
        },
        (*COMMON_FORGERIES, "tampered"),
    ),
}
"""Server-URL auth modes besides the default one, and the ways of getting each wrong."""


class RecordingVapi(FakeVapiServer):
    """The fake VAPI, with every request it receives kept as it was on the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.wire: RawRecorder | None = None

    def app(self) -> Any:
        self.wire = RawRecorder(super().app())
        return self.wire


@dataclass(frozen=True)
class FakeVapi:
    """The provider side of one deployment: the fake VAPI, and the channel's settings."""

    server: RecordingVapi
    settings: VapiSettings


def vapi_settings(fake: RecordingVapi, overrides: Mapping[str, Any]) -> VapiSettings:
    """The code's defaults (the hostile-routes registry signs with them; no `VAPI_*`
    variable changes a golden), with the fake's keys, short deadlines and `overrides`."""
    defaults = {name: field.default for name, field in VapiSettings.model_fields.items()}
    return VapiSettings(
        **{
            **defaults,
            "api_base": fake.base_url,
            "public_key": SecretStr(fake.public_key),
            "public_base_url": PUBLIC,
            # Kafka has this long to take the GREETING before the fallback is answered.
            "greeting_deadline_s": 2.0,
            "filler_after_ms": FILLER_AFTER_MS,
            "stream_deadline_s": INBOUND_DEADLINE_S,
            **overrides,
        }
    )


def spoken(outcome: Outcome) -> str:
    """What a streamed answer says, once its frames are checked against what VAPI needs:
    the role first, content only in between, `finish_reason: stop`, `[DONE]` last."""
    assert outcome.status == 200, outcome.text[:300]
    frames = outcome.frames
    assert frames[-1] == {"data": "[DONE]"}, frames
    deltas = [frame["data"]["choices"][0] for frame in frames[:-1]]
    assert deltas[0] == {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}
    assert deltas[-1] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    middle = deltas[1:-1]
    assert all(set(d["delta"]) == {"content"} and d["finish_reason"] is None for d in middle)
    return "".join(d["delta"]["content"] for d in middle)


# -- the suite ----------------------------------------------------------------------------------


class TestVapiConformance(ChannelConformance):
    plugin = VAPI
    package = "services.channels.vapi"
    forgeries = (*COMMON_FORGERIES, "wrong_prefix")
    overrides: Mapping[str, Any] = MappingProxyType({})
    """VAPI settings of the next deployment that differ from `vapi_settings`' (an auth mode)."""

    @contextlib.asynccontextmanager
    async def provider(self) -> AsyncIterator[FakeVapi]:
        fake = await asyncio.to_thread(RecordingVapi().start)
        try:
            yield FakeVapi(fake, vapi_settings(fake, self.overrides))
        finally:
            await asyncio.to_thread(fake.stop)

    def deployed_plugin(self, provider: FakeVapi, pipeline: bool) -> ChannelPlugin:
        settings = provider.settings
        if pipeline:
            # The brain answers: no apology before it does, and no filler (each retry of a
            # turn hears the same answer, whenever its request came). The filler is due at
            # the deadline, not after it.
            deadline_ms = int(PIPELINE_DEADLINE_S * 1000)
            late = {"stream_deadline_s": PIPELINE_DEADLINE_S, "filler_after_ms": deadline_ms}
            settings = settings.model_copy(update=late)
        return vapi_plugin(settings)

    def refused_statuses(self, request: Mapping[str, Any]) -> frozenset[int]:
        return frozenset({401})

    async def send(
        self, deployment: Deployment, request: Mapping[str, Any], credential: str = "valid"
    ) -> Outcome:
        settings: VapiSettings = deployment.provider.settings
        body = wire_json(request["json"])
        headers = dict(request["headers"])
        if request["path"].startswith(LLM_BASE_PATH):
            headers.update(llm_credential(settings, credential))
        else:
            headers.update(server_credential(settings, body, credential))
        response = await deployment.http.request(
            request["method"], request["path"], content=body, headers=headers
        )
        return outcome_of(response, settings)

    # -- 1. the other auth modes ------------------------------------------------------------

    @integration
    @pytest.mark.asyncio
    @pytest.mark.parametrize("mode", list(AUTH_MODES))
    async def test_every_auth_mode_refuses_forged_server_url_requests(
        self, infra: Infra, namespace: str, redis: Redis, mode: str
    ) -> None:
        self.overrides, forgeries = AUTH_MODES[mode]
        goldens = {path.stem: load(path) for path in golden_files(self.folder(), "inbound")}
        requests = [
            request
            for golden in goldens.values()
            for request in golden["requests"]
            if request["path"] == EVENTS_PATH
        ]
        async with self.deploy(infra, namespace, redis) as ingress:
            assert await self.forgery_problems(ingress, requests, forgeries) == []
            assert await ingress.inbound_total() == 0, "a refused request was published"
            # Signed in this mode, the same requests are taken.
            control = goldens["call_ended"]
            assert await self.replay(ingress, control) == []
            events = await ingress.inbound(len(control["expected"]))
            assert [summary(event) for event in events] == control["expected"]

    @integration
    @pytest.mark.asyncio
    async def test_a_held_request_ends_by_its_deadline_however_late_the_filler(
        self, infra: Infra, namespace: str, redis: Redis
    ) -> None:
        """VAPI_STREAM_DEADLINE_S bounds a held request whatever VAPI_FILLER_AFTER_MS says
        (both are operators' settings; a filler due after the deadline is never spoken)."""
        self.overrides = {"filler_after_ms": int(INBOUND_DEADLINE_S * 1000) + 30_000}
        [request] = load(self.folder() / "fixtures" / "inbound" / "llm_turn.json")["requests"]
        async with self.deploy(infra, namespace, redis) as ingress:
            apology = ingress.provider.settings.apology_text
            try:
                outcome = await asyncio.wait_for(
                    self.send(ingress, request), INBOUND_DEADLINE_S + 5
                )
            except TimeoutError:
                pytest.fail("the request was still open 5 s after its deadline")
            assert spoken(outcome) == apology

    # -- one message, five times: a custom-LLM request VAPI retried ---------------------------

    async def send_copies(self, deployment: Deployment, count: int) -> Copies:
        fake: FakeVapi = deployment.provider
        state = fake.server.state
        call = new_call(
            state, "inboundPhoneCall", number=PHONE, phone_number_id=DEV_PHONE_NUMBER_ID
        )
        # Known to the fake's control URL: a `say` of the answer would be seen (and counted).
        state.start_live(call, control_auth=True)
        text = "Where is my parcel"
        model = {"model": "switchboard", "messages": [{"role": "system", "content": "Be brief."}]}
        history = [
            {"role": "assistant", "content": fake.settings.fallback_greeting},
            {"role": "user", "content": text},
        ]
        body = wire_json(llm_body({"model": model}, history, call, None))
        headers = {"Content-Type": "application/json", **llm_credential(fake.settings, "valid")}
        timeout = httpx.Timeout(PIPELINE_DEADLINE_S + 30)

        async def ask() -> httpx.Response:
            return await deployment.http.post(
                LLM_PATH, content=body, headers=headers, timeout=timeout
            )

        asking = [asyncio.create_task(ask()) for _ in range(count)]
        turn = f"{call['id']}:turn:1"

        def of_turn(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in events if e["provider_message_id"] == turn]

        # Ingress has taken a copy once it published it (each request is published: the
        # brain knows a retried turn by its provider message id).
        events = await read_topic(
            deployment.bootstrap, deployment.topics.inbound, lambda e: len(of_turn(e)) >= count, 60
        )
        assert len(of_turn(events)) == count, [task for task in asking if task.done()]
        conversation_id = default_conversation_id("vapi", PHONE, IdentityRealm.PHONE)
        answers: list[str] = []
        detail = {"call_id": call["id"], "asking": asking, "answers": answers}
        return Copies(conversation_id, text, detail)

    async def settle(self, deployment: Deployment, copies: Copies) -> None:
        """Every held request streams to its end (the answer, then `[DONE]`)."""
        responses = await asyncio.wait_for(asyncio.gather(*copies.detail["asking"]), 120)
        settings = deployment.provider.settings
        copies.detail["answers"].extend(spoken(outcome_of(r, settings)) for r in responses)

    async def deliveries(self, deployment: Deployment, copies: Copies) -> int:
        """Distinct answers the held requests streamed (each retry of the turn gets the one
        answer; none gets the apology), plus any Live Call Control message to the call."""
        fake: FakeVapi = deployment.provider
        answers = copies.detail["answers"]
        assert len(answers) == self.copies and all(answers), answers
        assert not [a for a in answers if fake.settings.apology_text in a], answers
        controls = fake.server.control_log(copies.detail["call_id"])
        return len(set(answers)) + len(controls)

    # -- outbound -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def outbound_capture(
        self, deployment: Deployment, golden: Mapping[str, Any]
    ) -> AsyncIterator[Capture]:
        fake: FakeVapi = deployment.provider
        state = fake.server.state
        assert fake.server.wire is not None
        recorder = fake.server.wire
        spec = golden.get("call", {})
        call_id, holding = await _prepared_call(deployment, spec, golden["replies"])
        holders = sorted(
            {stream["holder"] for stream in spec.get("streams", [])}
            | {
                r["reply"]["reply_to"]
                for r in golden["replies"]
                if "reply_to" in r.get("reply", {})
            }
        )
        seen = len(state.control_log())
        recorder.clear()
        runtime = {"<public_key>": fake.server.public_key, "<call_id>": call_id}

        def controls() -> list[dict[str, Any]]:
            """Control-URL requests as they were on the wire, with the fake's verdict."""
            sent = [r for r in recorder.requests() if r.path.startswith("/control/")]
            answered = state.control_log()[seen:]
            assert len(sent) == len(answered), (sent, answered)
            return [
                {
                    **normalized(request, runtime),
                    "status": record["status"],
                    "during_stream": record["during_stream"],
                }
                for request, record in zip(sent, answered, strict=True)
            ]

        async def inboxes() -> list[dict[str, Any]]:
            entries = []
            for holder in holders:
                stored: list[tuple[str, dict[str, str]]]
                stored = await deployment.redis.xrange(inbox_key(deployment.namespace, holder))  # type: ignore[assignment]  # decoded responses
                for _, fields in stored:
                    entry: dict[str, Any] = {"inbox": holder, **fields}
                    if "body" in entry:
                        entry["body"] = json.loads(entry["body"])
                    entries.append(entry)
            return list(substitute(entries, {v: k for k, v in runtime.items()}))

        async def read(count: int) -> list[dict[str, Any]]:
            async def enough() -> bool:
                return len(controls()) + len(await inboxes()) >= count

            await eventually(enough, 10)
            return controls() + await inboxes()

        try:
            yield Capture(placeholders={"<call_id>": call_id}, read_wire=read)
        finally:
            for task in holding:
                task.cancel()
            await asyncio.gather(*holding, return_exceptions=True)

    # -- hostile input --------------------------------------------------------------------

    def hostile_routes(self) -> Mapping[tuple[str, str], Route]:
        keys = [
            ("POST", EVENTS_PATH),
            ("POST", LLM_PATH),
            ("POST", f"{LLM_PATH}/chat/completions"),
        ]
        return {key: ROUTES[key] for key in keys}


async def _prepared_call(
    deployment: Deployment, spec: Mapping[str, Any], replies: list[dict[str, Any]]
) -> tuple[str, list[asyncio.Task[None]]]:
    """A call as an outbound golden's `call` says (see the module docstring): its id, and
    the tasks standing in for the ingress instances that hold its custom-LLM requests."""
    state = deployment.provider.server.state
    call = new_call(state, "inboundPhoneCall", number=spec.get("number", PHONE))
    call_id = call["id"]
    if spec.get("live", True):
        state.start_live(call, control_auth=True)
    calls = VapiCalls(deployment.redis, deployment.namespace)
    # What ingress learnt of the call from VAPI's first message about it.
    await calls.remember(
        call_id,
        conversation_id=replies[0]["conversation_id"],
        caller=spec.get("number", PHONE),
        control_url=call["monitor"]["controlUrl"],
    )
    if spec.get("ended"):
        await calls.mark_ended(call_id, spec["ended"])
    holding = []
    for stream in spec.get("streams", []):
        correlation_id = stream["correlation_id"].replace("<call_id>", call_id)
        await calls.hold_stream(correlation_id, call_id, stream["holder"], 60)
        live = state.live(call_id)
        if live is not None:
            live.set_streaming(True)
        holder = _hold(deployment, calls, call_id, correlation_id, stream["holder"])
        holding.append(asyncio.create_task(holder))
    return call_id, holding


async def _hold(
    deployment: Deployment, calls: VapiCalls, call_id: str, correlation_id: str, holder: str
) -> None:
    """What the ingress instance holding a custom-LLM request does: it streams until the
    final part (or a stop) of its answer reaches its inbox, then the stream is over, for
    VAPI (the fake's call) and for egress (the store)."""
    key = inbox_key(deployment.namespace, holder)
    last = "0-0"
    while True:
        # [[stream, [(entry id, {field: value}), ...]]], str with decoded responses
        batches: list[tuple[str, list[tuple[str, dict[str, str]]]]]
        batches = await deployment.redis.xread({key: last}, block=100)  # type: ignore[assignment]  # redis-py returns a union
        for _stream, entries in batches or []:
            for entry_id, fields in entries:
                last = entry_id
                ours = fields.get("correlation_id") == correlation_id
                if ours and (fields["kind"] == "stream_stop" or fields.get("final") == "1"):
                    live = deployment.provider.server.state.live(call_id)
                    if live is not None:
                        live.set_streaming(False)
                    await calls.release_stream(correlation_id, call_id)
                    return
