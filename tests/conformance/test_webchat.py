"""Web chat against the channel conformance suite (`tests/conformance/base.py`).

Goldens: services/channels/webchat/fixtures/. An inbound golden request is one browser
connection: `{"websocket": path, "session_id", "send": [frames]}`, with a token issued here for
that session; its `response` pins the handshake (101) and every frame the browser got back, in
order. The credential is the session token in the socket URL: a forged, expired or missing one
refuses the handshake (HTTP 403). Outbound, the wire is the frames the browser receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.channels.webchat.channel import WEBCHAT
from services.channels.webchat.store import ChatStore
from services.channels.webchat.tokens import TokenSigner, new_session_id
from services.ingress.identity import default_conversation_id
from tests.conformance.base import Capture, ChannelConformance, Copies, Deployment
from tests.conformance.goldens import Outcome
from tests.integration.test_chat_hostile import HOSTILE
from tests.integration.test_chat_hostile import MARKER as FRAME_MARKER
from tests.integration.test_hostile_http import CHAT_SECRET, MARKER, ROUTES, Route
from tests.support.kafka import eventually

SOCKET = "/v1/chat/ws"
TTL_S = 3600
SIGNER = TokenSigner(CHAT_SECRET.encode(), TTL_S)
PONG = {"type": "pong"}


def token_for(session_id: str, credential: str) -> str | None:
    """A session token, made right or wrong."""
    if credential == "missing":
        return None
    token = {
        "valid": lambda: SIGNER.issue(session_id)[0],
        "forged": lambda: TokenSigner(b"another-ingress-secret", TTL_S).issue(session_id)[0],
        "expired": lambda: SIGNER.issue(session_id, now=time.time() - 2 * TTL_S)[0],
        # A valid token of another session with this session's id pasted in.
        "swapped": lambda: SIGNER.issue(new_session_id())[0].replace("v1.cs_", "v1.cs_x", 1),
    }[credential]()
    return token


def socket_url(deployment: Deployment, token: str | None) -> str:
    base = deployment.base_url.replace("http://", "ws://") + SOCKET
    return (
        base if token is None else f"{base}?token={quote(token, safe='', errors='surrogatepass')}"
    )


async def next_frame(ws: Any, timeout_s: float = 15.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        return dict(json.loads(await ws.recv()))


async def frames_until_pong(ws: Any, pongs: int) -> list[dict[str, Any]]:
    """Every frame up to the `pongs`-th pong, that pong left out: the server answers frames in
    order, so this is all it sent for the frames before our last ping."""
    frames: list[dict[str, Any]] = []
    seen = 0
    while seen < pongs:
        frame = await next_frame(ws)
        seen += frame == PONG
        frames.append(frame)
    return frames[:-1]


class TestWebChatConformance(ChannelConformance):
    plugin = WEBCHAT
    package = "services.channels.webchat"
    forgeries = ("forged", "expired", "swapped", "missing")
    frame_markers = (FRAME_MARKER,)

    def refused_statuses(self, request: Mapping[str, Any]) -> frozenset[int]:
        return frozenset({403})  # closing before accept: the handshake is answered 403

    async def send(
        self, deployment: Deployment, request: Mapping[str, Any], credential: str = "valid"
    ) -> Outcome:
        token = token_for(request["session_id"], credential)
        try:
            ws = await websockets.connect(socket_url(deployment, token))
        except InvalidStatus as refused:
            return Outcome(refused.response.status_code)
        async with ws:
            for frame in request["send"]:
                await ws.send(json.dumps(frame, ensure_ascii=False))
            await ws.send(json.dumps({"type": "ping"}))
            pings = 1 + sum(frame.get("type") == "ping" for frame in request["send"])
            return Outcome(101, frames=await frames_until_pong(ws, pings))

    # -- one message, five times --------------------------------------------------------

    async def send_copies(self, deployment: Deployment, count: int) -> Copies:
        session_id = new_session_id()
        ws = await websockets.connect(socket_url(deployment, token_for(session_id, "valid")))
        assert (await next_frame(ws))["type"] == "ready"
        text = "Where is my parcel"
        frame = json.dumps({"type": "message", "id": "m-1", "text": text})
        # A page that resends before the ack arrived: the copies go out back to back.
        await asyncio.gather(*(ws.send(frame) for _ in range(count)))
        received = [await next_frame(ws, 30) for _ in range(count)]
        acks = [f for f in received if f == {"type": "ack", "id": "m-1"}]
        replies = [f for f in received if f["type"] == "reply"]
        assert len(acks) + len(replies) == count, received
        conversation_id = default_conversation_id("chat", session_id)
        return Copies(conversation_id, text, {"ws": ws, "session_id": session_id, "seen": replies})

    async def settle(self, deployment: Deployment, copies: Copies) -> None:
        """Egress stored the reply and rang the socket's holder: wait until the outbox is
        drained to the socket, then collect what the socket got."""
        store = ChatStore(deployment.redis, deployment.namespace, outbox_ttl_s=60)
        session_id = copies.detail["session_id"]
        assert await eventually(lambda: _drained(store, session_id), 30), "outbox not drained"
        ws, seen = copies.detail["ws"], copies.detail["seen"]
        await ws.send(json.dumps({"type": "ping"}))
        seen += [f for f in await frames_until_pong(ws, 1) if f["type"] == "reply"]
        await ws.close()

    async def deliveries(self, deployment: Deployment, copies: Copies) -> int:
        return sum(frame["in_reply_to"] == "m-1" for frame in copies.detail["seen"])

    # -- outbound -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def outbound_capture(
        self, deployment: Deployment, golden: Mapping[str, Any]
    ) -> AsyncIterator[Capture]:
        session_id = golden["session_id"]
        store = ChatStore(deployment.redis, deployment.namespace, outbox_ttl_s=60)
        async with websockets.connect(socket_url(deployment, token_for(session_id, "valid"))) as ws:
            assert (await next_frame(ws))["type"] == "ready"

            async def read(count: int) -> list[dict[str, Any]]:
                frames = [await next_frame(ws) for _ in range(count)]
                assert await eventually(lambda: _drained(store, session_id), 30)
                await ws.send(json.dumps({"type": "ping"}))
                return frames + await frames_until_pong(ws, 1)

            yield Capture(placeholders={}, read_wire=read)

    # -- hostile input --------------------------------------------------------------------

    def hostile_routes(self) -> Mapping[tuple[str, str], Route]:
        return {("POST", "/v1/chat/sessions"): ROUTES[("POST", "/v1/chat/sessions")]}

    async def hostile_socket_problems(self, deployment: Deployment) -> list[str]:
        """The frames of tests/integration/test_chat_hostile.py: each gets its error frame on
        a socket that still answers; hostile tokens are a refused handshake; a binary frame
        is a 1003 close."""
        problems = []
        url = socket_url(deployment, token_for(new_session_id(), "valid"))
        async with websockets.connect(url, max_size=None) as ws:
            assert (await next_frame(ws))["type"] == "ready"
            for raw, code, frame_id in HOSTILE:
                try:
                    await ws.send(raw)
                    error = await next_frame(ws)
                    await ws.send(json.dumps({"type": "ping"}))
                    pong = await next_frame(ws)
                except (ConnectionClosed, TimeoutError) as exc:
                    return [*problems, f"{raw[:60]!r}: the socket died ({type(exc).__name__})"]
                if (error.get("type"), error.get("code"), error.get("id")) != (
                    "error",
                    code,
                    frame_id,
                ) or FRAME_MARKER in json.dumps(error):
                    problems.append(f"{raw[:60]!r}: {error}")
                if pong != PONG:
                    problems.append(f"{raw[:60]!r}: no pong after it, got {pong}")
        session = new_session_id()
        for token in (
            MARKER,
            MARKER * 200,
            f"v1.{session}.{MARKER}.x",
            f"v1.{session}.\u00b2." + "A" * 43,
            f"v1.{session}.{'9' * 2000}.sig",
            "v1.\ud800.1.sig",
        ):
            try:
                async with websockets.connect(socket_url(deployment, token)):
                    problems.append(f"token {token[:40]!r} was accepted")
            except InvalidStatus as refused:
                if refused.response.status_code != 403:
                    problems.append(f"token {token[:40]!r}: {refused.response.status_code}")
        async with websockets.connect(url) as ws:
            await next_frame(ws)
            await ws.send(MARKER.encode())
            try:
                await next_frame(ws)
                problems.append("a binary frame was answered instead of closing with 1003")
            except ConnectionClosed as closed:
                if closed.rcvd is None or closed.rcvd.code != 1003:
                    problems.append(f"a binary frame closed the socket with {closed.rcvd}")
        return problems


async def _drained(store: ChatStore, session_id: str) -> bool:
    return not await store.pending(session_id)
