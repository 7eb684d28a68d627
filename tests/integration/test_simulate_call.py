"""`switchboard simulate call` against the fake VoIPBin and a small stand-in for Switchboard.

The stand-in does what ingress and egress do for a call, in the simplest way: on
`call_progressing` it opens a transcription and a speaking session through the REST API, it
answers each caller transcript with `say`, hangs up (REST) after "bye", and its `fetch`
endpoint greets and keeps the flow alive. The full system is the lead's e2e test; this one
pins the simulator's side of the conversation.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request

from services.channels.voipbin.fake import FakeVoipbinServer
from services.channels.voipbin.settings import DEV_FETCH_TOKEN, FETCH_PATH
from services.channels.voipbin.tools.call_sim import simulate_call
from services.channels.voipbin.tools.sim_config import CallSimulation
from services.fakes.threaded import ThreadedServer

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GREETING = "Hello, this is Switchboard. How can I help?"


class StandIn(ThreadedServer):
    """Ingress + egress for voice, reduced to a few lines each."""

    label = "switchboard stand-in"

    def __init__(self, api_base: str, access_key: str, *, end_flow: bool = False) -> None:
        super().__init__("127.0.0.1", 0)
        self.api_base = api_base
        self.key = access_key
        self.end_flow = end_flow
        self.events: list[str] = []
        self.speaking: dict[str, str] = {}  # call id -> speaking id
        self.call_of: dict[str, str] = {}  # transcribe id -> call id
        self.fetched: list[tuple[str, str]] = []  # (call id, query) of each fetch
        self.tasks: set[asyncio.Task[None]] = set()

    async def _goodbye(self, call_id: str, speaking_id: str) -> None:
        """Like egress: say goodbye, let it be heard (here longer than the simulation's quiet
        moment), then hang up."""
        await self._api("POST", f"/speakings/{speaking_id}/say", {"text": "Goodbye!"})
        await asyncio.sleep(1.5)
        await self._api("POST", f"/calls/{call_id}/hangup")

    async def _api(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.request(
                method, self.api_base + path, json=body, params={"accesskey": self.key}
            )
            response.raise_for_status()
            return response.json() if response.content else None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @app.post("/v1/voipbin/events")
        async def events(request: Request) -> dict[str, str]:
            event = await request.json()
            self.events.append(event["type"])
            data = event["data"]
            if event["type"] == "call_progressing":
                call_id = data["id"]
                transcribe = await self._api(
                    "POST",
                    "/transcribes",
                    {
                        "reference_type": "call",
                        "reference_id": call_id,
                        "language": "en-US",
                        "direction": "in",
                    },
                )
                self.call_of[transcribe["id"]] = call_id
                speaking = await self._api(
                    "POST",
                    "/speakings",
                    {
                        "reference_type": "call",
                        "reference_id": call_id,
                        "language": "en-US",
                        "provider": "elevenlabs",
                        "direction": "out",
                    },
                )
                self.speaking[call_id] = speaking["id"]
            elif event["type"] == "transcript_created":
                call_id = self.call_of[data["transcribe_id"]]
                speaking_id = self.speaking[call_id]
                await self._api(
                    "POST",
                    f"/speakings/{speaking_id}/say",
                    {"text": f"You said: {data['message']}"},
                )
                if data["message"] == "bye":
                    self.tasks.add(asyncio.create_task(self._goodbye(call_id, speaking_id)))
            return {"status": "ok"}

        @app.post(FETCH_PATH + "/{token}")
        async def fetch(token: str, request: Request) -> list[dict[str, Any]]:
            assert token == DEV_FETCH_TOKEN
            body = await request.json()
            self.fetched.append((body["reference_id"], str(request.url.query)))
            digits = request.query_params.get("digits", "")
            talk = {"type": "talk", "option": {"text": GREETING, "language": "en-US"}}
            if self.end_flow:
                return [talk]
            wait = {"type": "digits_receive", "option": {"duration": 1000, "length": 1}}
            loop_url = f"{request.base_url}{FETCH_PATH.lstrip('/')}/{token}"
            again = {
                "type": "fetch",
                "option": {
                    "event_url": f"{loop_url}?n={len(self.fetched)}"
                    "&digits=${voipbin.call.digits}",
                    "event_method": "POST",
                },
            }
            if len(self.fetched) == 1:
                return [talk, wait, again]
            if digits:
                pressed = {"type": "talk", "option": {"text": f"You pressed {digits}."}}
                return [pressed, wait, again]
            return [wait, again]

        return app


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeVoipbinServer]:
    async with FakeVoipbinServer(port=0) as server:
        server.configure(webhook_retry_delay_ms=50)
        yield server


def simulation(fake: FakeVoipbinServer, ingress_url: str) -> CallSimulation:
    return CallSimulation(
        ingress_url=ingress_url,
        api_base=fake.api_base,
        access_key=fake.access_key,
        fetch_token=DEV_FETCH_TOKEN,
        caller="+15557654321",
        turn_timeout_s=8.0,
        quiet_s=0.5,
        poll_s=0.1,
        session_timeout_s=5.0,
    )


async def test_a_conversation_that_the_agent_ends(fake: FakeVoipbinServer) -> None:
    async with StandIn(fake.api_base, fake.access_key) as standin:
        out, err = io.StringIO(), io.StringIO()
        code = await simulate_call(
            simulation(fake, standin.base_url), ["What time is it?", "bye"], out=out, err=err
        )
    text = out.getvalue()
    assert code == 0, text + err.getvalue()
    lines = text.splitlines()
    assert f"agent: {GREETING}" in lines
    assert lines.index("you> What time is it?") < lines.index("agent: You said: What time is it?")
    assert lines[-3:] == ["agent: You said: bye", "agent: Goodbye!", "[agent hung up]"]
    [call] = fake.state.calls()
    assert call["status"] == "hangup"
    assert call["source"]["target"] == "+15557654321"
    assert standin.events.count("call_hangup") == 1, "VoIPBin reports the hangup once"
    assert standin.events[0] == "call_progressing"


async def test_the_caller_hangs_up_when_the_lines_run_out(fake: FakeVoipbinServer) -> None:
    async with StandIn(fake.api_base, fake.access_key) as standin:
        out = io.StringIO()
        code = await simulate_call(simulation(fake, standin.base_url), ["Hi"], out=out)
    assert code == 0, out.getvalue()
    assert out.getvalue().splitlines()[-2:] == ["agent: You said: Hi", "[you hang up]"]
    assert fake.state.calls()[0]["status"] == "hangup"
    assert standin.events[-1] == "call_hangup"
    assert len(fake.state.fetches()) >= 1


async def test_a_flow_that_runs_out_of_actions_ends_the_call(fake: FakeVoipbinServer) -> None:
    async with StandIn(fake.api_base, fake.access_key, end_flow=True) as standin:
        out = io.StringIO()
        code = await simulate_call(simulation(fake, standin.base_url), ["Hi"], out=out)
    text = out.getvalue()
    assert f"agent: {GREETING}" in text
    assert "[the flow has no more actions: VoIPBin hangs up the call]" in text
    assert "you> Hi" not in text, "nobody is left to talk to"
    assert code == 0
    assert standin.events[-1] == "call_hangup"


async def test_keys_reach_the_next_fetch_through_the_digits_variable(
    fake: FakeVoipbinServer,
) -> None:
    async with StandIn(fake.api_base, fake.access_key) as standin:
        out = io.StringIO()
        code = await simulate_call(
            simulation(fake, standin.base_url), ["/keys 42", "/keys x"], out=out
        )
    text = out.getvalue()
    assert code == 0, text
    assert "agent: You pressed 42." in text.splitlines()
    assert "[/keys takes 0-9, * and #, e.g. /keys 1]" in text
    queries = [query for _, query in standin.fetched]
    assert queries[0] == "", "the flow's own fetch URL has no query"
    assert "n=1&digits=" in queries[1], "VoIPBin substitutes ${...}: no keys, no digits"
    assert any(query.endswith("&digits=42") for query in queries)
    assert not any("voipbin.call" in query for query in queries)


async def test_typed_lines_end_at_eof(fake: FakeVoipbinServer) -> None:
    typed = iter(["Hello", None])

    async def read_line(prompt: str) -> str | None:
        assert prompt == "you> "
        return next(typed)

    async with StandIn(fake.api_base, fake.access_key) as standin:
        out = io.StringIO()
        code = await simulate_call(
            simulation(fake, standin.base_url), None, out=out, read_line=read_line
        )
    assert code == 0, out.getvalue()
    assert "agent: You said: Hello" in out.getvalue()
    assert out.getvalue().splitlines()[-1] == "[you hang up]"


async def test_no_ingress_is_one_clear_error(fake: FakeVoipbinServer) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = await simulate_call(simulation(fake, "http://127.0.0.1:9"), ["Hi"], out=out, err=err)
    assert code == 1
    assert "ingress is not reachable at http://127.0.0.1:9" in err.getvalue()
    assert "make run" in err.getvalue()
    assert fake.requests() == [], "nothing is set up before both ends answer"


async def test_no_fake_is_one_clear_error() -> None:
    sim = CallSimulation(
        ingress_url="http://127.0.0.1:9",
        api_base="http://127.0.0.1:9/v1.0",
        access_key="k",
        fetch_token="t",
    )
    err = io.StringIO()
    assert await simulate_call(sim, ["Hi"], out=io.StringIO(), err=err) == 1
    assert "no fake VoIPBin at http://127.0.0.1:9" in err.getvalue()
