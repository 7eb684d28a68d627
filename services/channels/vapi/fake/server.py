"""FakeVapiServer: the fake served by uvicorn on a background thread; ``main`` (CLI)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any, Self

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from services.channels.vapi.fake.app import create_app
from services.channels.vapi.fake.calling import drive_call
from services.channels.vapi.fake.config import DEV_PRIVATE_KEY, DEV_PUBLIC_KEY, FakeVapiConfig
from services.channels.vapi.fake.result import CallResult, Line
from services.channels.vapi.fake.signing import ServerAuth
from services.channels.vapi.fake.state import FakeVapiState
from services.channels.vapi.fake.target import CallTarget
from services.fakes.threaded import ThreadedServer


class FakeVapiServer(ThreadedServer):
    """Runs the fake in a background thread: ``with``/``async with``, or ``start()``/``stop()``.

    ``port=0`` picks a free port; :attr:`base_url` (the REST base and the root of control
    URLs) is right as soon as :meth:`start` returns.
    """

    label = "fake VAPI server"

    def __init__(
        self, config: FakeVapiConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        ThreadedServer.__init__(self, host, port)
        self.state = FakeVapiState(config)

    def app(self) -> FastAPI:
        """The fake's ASGI app, bound to this server's state."""
        return create_app(self.state)

    def start(self, timeout: float = 10.0) -> Self:
        super().start(timeout)
        self.state.base_url = self.base_url
        return self

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: give it to clients as the API base (``https://api.vapi.ai``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def private_key(self) -> str:
        """The REST key the server accepts now."""
        return self.state.config.private_key.get_secret_value()

    @property
    def public_key(self) -> str:
        """The key control URLs want when control authentication is on."""
        return self.state.config.public_key.get_secret_value()

    def configure(self, **fields: Any) -> FakeVapiConfig:
        """Change behaviour switches; see :class:`FakeVapiConfig`."""
        return self.state.configure(**fields)

    def reset(self) -> None:
        """Forget resources, calls and records; restore the starting config."""
        self.state.reset()

    # -- driving calls -----------------------------------------------------------------------

    async def astart_call(
        self,
        number: str | None = "+15551234567",
        lines: Sequence[str | Line] = (),
        *,
        server_url: str = "",
        auth: ServerAuth | None = None,
        llm_url: str = "",
        llm_key: str | None = None,
        phone_number_id: str = "",
        interrupt_after_chars: int | None = None,
        linger_s: float = 1.0,
        speech_updates: bool = False,
        assistant_request_timeout_s: float = 7.5,
        llm_timeout_s: float = 20.0,
        turn_timeout_s: float = 60.0,
    ) -> CallResult:
        """A caller (``number``; None: a web call) phones in and says ``lines``; returns when
        the call is over. Unset targets come from the fake's resources (see :mod:`.target`)."""
        target = CallTarget(
            server_url=server_url,
            auth=auth,
            llm_url=llm_url,
            llm_key=llm_key,
            phone_number_id=phone_number_id,
            assistant_request_timeout_s=assistant_request_timeout_s,
            llm_timeout_s=llm_timeout_s,
            turn_timeout_s=turn_timeout_s,
        )
        return await drive_call(
            self.state,
            number,
            lines,
            target=target,
            interrupt_after_chars=interrupt_after_chars,
            linger_s=linger_s,
            speech_updates=speech_updates,
        )

    def start_call(
        self, number: str | None = "+15551234567", lines: Sequence[str | Line] = (), **options: Any
    ) -> CallResult:
        """:meth:`astart_call` from synchronous code (not from a running event loop: a server
        on that loop could not answer; await :meth:`astart_call` there)."""
        _no_running_loop("start_call")
        return asyncio.run(self.astart_call(number, lines, **options))

    async def aanswer_call(
        self,
        call_id: str,
        lines: Sequence[str | Line] = (),
        *,
        target: CallTarget | None = None,
        **options: Any,
    ) -> CallResult:
        """The customer of an outbound call (``POST /call``) picks up and says ``lines``."""
        return await drive_call(self.state, None, lines, target=target, call_id=call_id, **options)

    def answer_call(
        self, call_id: str, lines: Sequence[str | Line] = (), **options: Any
    ) -> CallResult:
        """:meth:`aanswer_call` from synchronous code."""
        _no_running_loop("answer_call")
        return asyncio.run(self.aanswer_call(call_id, lines, **options))

    # -- inspection --------------------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """REST requests, oldest first (bodies masked); ``path`` matches as a prefix."""
        return [
            r
            for r in self.state.requests()
            if method in (None, r["method"]) and (path is None or r["path"].startswith(path))
        ]

    def control_log(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """Requests to control URLs, oldest first (``type``, ``body``, ``status``,
        ``authorized``, ``during_stream``, ``at``)."""
        return self.state.control_log(call_id)

    def call(self, call_id: str) -> dict[str, Any]:
        """One call object, as ``GET /call/{id}`` shows it."""
        return self.state.get("call", call_id)

    def call_result(self, call_id: str) -> dict[str, Any] | None:
        """The recorded result of a finished driven call (:meth:`CallResult.to_dict`)."""
        return self.state.result(call_id)

    def assistants(self) -> list[dict[str, Any]]:
        """Every assistant, newest first."""
        return self.state.items("assistant")

    def credentials(self, *, secrets: bool = False) -> list[dict[str, Any]]:
        """Every credential, newest first (secrets masked unless asked for)."""
        return self.state.items("credential", secrets=secrets)

    def phone_numbers(self) -> list[dict[str, Any]]:
        """Every phone number, newest first."""
        return self.state.items("phone-number")


_WILDCARDS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - compared with, never bound to


def _no_running_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{name} blocks: from async code await a{name} instead")


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the fake until interrupted."""
    parser = argparse.ArgumentParser(description="Fake VAPI: REST API, call driver, control URLs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8030)
    parser.add_argument(
        "--public-url", default="", help="how others reach it (control URLs; default its own)"
    )
    parser.add_argument(
        "--private-key", default=DEV_PRIVATE_KEY, help="REST key (default: dev key)"
    )
    parser.add_argument("--public-key", default=DEV_PUBLIC_KEY, help="control URL key")
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args(argv)
    config = FakeVapiConfig(
        private_key=SecretStr(args.private_key),
        public_key=SecretStr(args.public_key),
        public_url=args.public_url,
        latency_ms=args.latency_ms,
    )
    state = FakeVapiState(config)
    host = f"[{args.host}]" if ":" in args.host else args.host
    state.base_url = f"http://{'127.0.0.1' if args.host in _WILDCARDS else host}:{args.port}"
    # No access log: it is noise, and request lines are all a log would need to leak a path.
    uvicorn.run(
        create_app(state),
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
