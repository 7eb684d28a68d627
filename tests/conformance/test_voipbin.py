"""VoIPBin voice against the channel conformance suite (`tests/conformance/base.py`).

Goldens: services/channels/voipbin/fixtures/. An inbound golden request is what VoIPBin sends
(providers.md 1.4a, 1.5): `{"method", "path", "headers", "json"}`, the body written compactly
as Go writes it. Event webhooks are signed here (`X-Voipbin-Signature: sha256=<hex>` over the
raw body); `fetch` requests are unsigned and carry the path token, written `<fetch_token>` in
the goldens. Outbound, the fake VoIPBin records every REST request on the wire (`<accesskey>`,
`<call_id>`, `<speaking_id>`, `<transcribe_id>` stand for run-time values), and the answers to
held `fetch` requests are read from the holder's inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import SecretStr

from services.channels.voipbin.channel import VOIPBIN
from services.channels.voipbin.fake import FakeVoipbinServer, transcript_data
from services.channels.voipbin.settings import EVENTS_PATH, FETCH_PATH
from services.channels.voipbin.signature import sign_body
from services.common.inbox import inbox_key
from services.egress.config import EgressSettings
from services.ingress.config import IngressSettings
from services.ingress.identity import default_conversation_id
from tests.conformance.base import Capture, ChannelConformance, Copies, Deployment
from tests.conformance.goldens import Outcome
from tests.conformance.stack import RawRecorder, normalized, substitute
from tests.integration.test_hostile_http import (
    ENDED_CALL,
    FETCH_TOKEN,
    PHONE,
    ROUTES,
    VOIPBIN_SECRET,
    Harness,
    Route,
    dumps,
    event,
    settings_for,
    voipbin_event,
)
from tests.support.infra import Infra
from tests.support.kafka import eventually

WRONG_TOKENS = {
    "forged": "f" * len(FETCH_TOKEN),
    "other_secret": "another-fetch-token-" + "0" * 20,
    "tampered": FETCH_TOKEN + "0",
    "missing": "",
}
"""`fetch` is unsigned (providers.md 1.4a): its credential is the path token."""


class RecordingVoipbin(FakeVoipbinServer):
    """The fake VoIPBin, with every request it receives kept as it was on the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.wire: RawRecorder | None = None

    def app(self) -> Any:
        self.wire = RawRecorder(super().app())
        return self.wire


def go_json(value: Any) -> bytes:
    """JSON as VoIPBin's Go services write it: compact, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def signature(body: bytes, credential: str) -> dict[str, str]:
    """The `X-Voipbin-Signature` header (Go's spelling) of an event body, right or wrong."""
    if credential == "missing":
        return {}
    value = {
        "valid": lambda: sign_body(VOIPBIN_SECRET, body),
        "forged": lambda: "sha256=" + "0" * 64,
        "other_secret": lambda: sign_body("another-customer-secret-0000000000", body),
        # A valid signature of another body: this one was changed on the way.
        "tampered": lambda: sign_body(VOIPBIN_SECRET, body + b" "),
    }[credential]()
    return {"X-Voipbin-Signature": value}


class TestVoipbinConformance(ChannelConformance):
    plugin = VOIPBIN
    package = "services.channels.voipbin"
    forgeries = ("forged", "other_secret", "tampered", "missing")

    @contextlib.asynccontextmanager
    async def provider(self) -> AsyncIterator[RecordingVoipbin]:
        fake = await asyncio.to_thread(RecordingVoipbin().start)
        try:
            yield fake
        finally:
            await asyncio.to_thread(fake.stop)

    def ingress_settings(self, infra: Infra, namespace: str, provider: Any) -> IngressSettings:
        return settings_for(infra, namespace, provider.api_base, provider.access_key)

    def egress_settings(self, deployment: Deployment) -> EgressSettings:
        fake: RecordingVoipbin = deployment.provider
        return (
            super()
            .egress_settings(deployment)
            .model_copy(
                update={
                    "voipbin_api_base": fake.api_base,
                    "voipbin_access_key": SecretStr(fake.access_key),
                    # Calls in tests are short: an ending call is hung up within a second.
                    "voice_hangup_wait_max_s": 1.0,
                    "voice_state_wait_s": 2.0,
                }
            )
        )

    def refused_statuses(self, request: Mapping[str, Any]) -> frozenset[int]:
        # A wrong fetch token is a path that does not exist: 404, as the design says
        # (services/channels/voipbin/inbound/fetch.py), so the endpoint cannot be probed.
        return frozenset({404} if request["path"].startswith(FETCH_PATH) else {401})

    async def send(
        self, deployment: Deployment, request: Mapping[str, Any], credential: str = "valid"
    ) -> Outcome:
        payload = substitute(request.get("json"), {"<fetch_token>": FETCH_TOKEN})
        body = go_json(payload) if "json" in request else b""
        headers = dict(request["headers"])
        path = request["path"]
        if path.startswith(FETCH_PATH):
            token = FETCH_TOKEN if credential == "valid" else WRONG_TOKENS[credential]
            path = path.replace("<fetch_token>", token)
        else:
            headers.update(signature(body, credential))
        response = await deployment.http.request(
            request["method"], path, params=request.get("query"), content=body, headers=headers
        )
        text = response.text.replace(FETCH_TOKEN, "<fetch_token>")
        return Outcome(response.status_code, text, response.headers.get("content-type", ""))

    # -- one message, five times --------------------------------------------------------

    async def send_copies(self, deployment: Deployment, count: int) -> Copies:
        fake: RecordingVoipbin = deployment.provider
        call = await asyncio.to_thread(fake.add_call, source=PHONE)
        transcribe = fake.state.create_transcribe(call["id"], {"language": "en-US"})
        text = "Where is my parcel"
        body = go_json(
            {"type": "transcript_created", "data": transcript_data(transcribe["id"], text)}
        )
        headers = {"Content-Type": "application/json", **signature(body, "valid")}
        responses = await asyncio.gather(
            *(
                deployment.http.post(EVENTS_PATH, content=body, headers=headers)
                for _ in range(count)
            )
        )
        assert [r.status_code for r in responses] == [200] * count, [r.text for r in responses]
        return Copies(default_conversation_id("voice", PHONE), text, {"call_id": call["id"]})

    async def deliveries(self, deployment: Deployment, copies: Copies) -> int:
        fake: RecordingVoipbin = deployment.provider
        spoken = await eventually(
            lambda: [
                entry
                for entry in fake.speech_log(copies.detail["call_id"])
                if entry["op"] in ("say", "talk")
            ],
            30,
        )
        return len(spoken)

    # -- outbound -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def outbound_capture(
        self, deployment: Deployment, golden: Mapping[str, Any]
    ) -> AsyncIterator[Capture]:
        fake: RecordingVoipbin = deployment.provider
        assert fake.wire is not None
        recorder = fake.wire
        call_id = (await asyncio.to_thread(fake.add_call, **golden["call"]))["id"]
        recorder.clear()
        holders = sorted(
            {
                r["reply"]["reply_to"]
                for r in golden["replies"]
                if r.get("reply", {}).get("reply_to")
            }
        )

        async def held_answers() -> list[dict[str, Any]]:
            answers = []
            for holder in holders:
                key = inbox_key(deployment.namespace, holder)
                for _, fields in await deployment.redis.xrange(key):
                    answers.append({"inbox": holder, **fields, "body": json.loads(fields["body"])})
            return answers

        async def read(count: int) -> list[dict[str, Any]]:
            async def enough() -> bool:
                return len(recorder.requests()) + len(await held_answers()) >= count

            await eventually(enough, 10)
            # One session of each kind at most: a second one shows up as a raw id.
            sessions = [("<speaking_id>", s["id"]) for s in fake.speakings(call_id)]
            sessions += [("<transcribe_id>", t["id"]) for t in fake.transcribes(call_id)]
            runtime = {"<accesskey>": fake.access_key, "<call_id>": call_id, **dict(sessions)}
            wire = [normalized(request, runtime) for request in recorder.requests()]
            return wire + substitute(await held_answers(), {v: k for k, v in runtime.items()})

        yield Capture(placeholders={"<call_id>": call_id}, read_wire=read)

    # -- hostile input --------------------------------------------------------------------

    def hostile_routes(self) -> Mapping[tuple[str, str], Route]:
        keys = [
            ("POST", EVENTS_PATH),
            ("PUT", EVENTS_PATH),
            ("POST", FETCH_PATH + "/{token}"),
            ("GET", FETCH_PATH + "/{token}"),
        ]
        return {key: ROUTES[key] for key in keys}

    async def prepare_hostile(self, deployment: Deployment, harness: Harness) -> None:
        # The shared fetch golden names a call that has ended (answered at once, hangup).
        ended = await asyncio.to_thread(
            voipbin_event, harness, "POST", dumps(event("call_hangup", ENDED_CALL))
        )
        assert ended.status_code == 200, ended.text
