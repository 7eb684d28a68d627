"""FakeVoipbinServer: the fake served by uvicorn on a background thread; ``main`` (CLI)."""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from services.channels.voipbin.fake.app import create_app
from services.channels.voipbin.fake.config import API_PREFIX, DEV_ACCESS_KEY, FakeVoipbinConfig
from services.channels.voipbin.fake.server_driving import ServerDriving
from services.channels.voipbin.fake.state import FakeVoipbinState
from services.fakes.threaded import ThreadedServer


class FakeVoipbinServer(ServerDriving, ThreadedServer):
    """Runs the fake in a background thread: ``with``/``async with``, or ``start()``/``stop()``.

    ``port=0`` picks a free port; the socket is bound in :meth:`start` before uvicorn runs,
    so :attr:`port`, :attr:`base_url` and :attr:`api_base` are right as soon as it returns.
    Methods that send HTTP (``emit*``, ``fetch``) block; from async code use ``aemit`` /
    ``afetch`` so a receiver on the caller's event loop can answer.
    """

    label = "fake VoIPBin server"

    def __init__(
        self, config: FakeVoipbinConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        ThreadedServer.__init__(self, host, port)
        self.state = FakeVoipbinState(config)

    def app(self) -> FastAPI:
        """The fake's ASGI app, bound to this server's state."""
        return create_app(self.state)

    # -- addresses and config ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:PORT`` (controls live at ``/_fake``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_base(self) -> str:
        """The API base to give clients, like ``https://api.voipbin.net/v1.0``."""
        return self.base_url + API_PREFIX

    @property
    def access_key(self) -> str:
        """The accesskey the server currently accepts."""
        return self.state.config.access_key.get_secret_value()

    @property
    def webhook_secret(self) -> str | None:
        """The secret events are signed with (None: unsigned)."""
        secret = self.state.config.webhook_secret
        return secret.get_secret_value() if secret else None

    @property
    def config(self) -> FakeVoipbinConfig:
        """A copy of the current config."""
        return self.state.config.model_copy(deep=True)

    def configure(self, **fields: Any) -> FakeVoipbinConfig:
        """Change behaviour switches; see :class:`FakeVoipbinConfig`."""
        return self.state.configure(**fields)

    def reset(self) -> None:
        """Forget resources and records and restore the starting config."""
        self.state.reset()


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the fake until interrupted."""
    parser = argparse.ArgumentParser(description="Fake VoIPBin REST API and event emitter.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8020)
    parser.add_argument(
        "--access-key", default=DEV_ACCESS_KEY, help="the accesskey to accept (default: dev key)"
    )
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args(argv)
    config = FakeVoipbinConfig(access_key=SecretStr(args.access_key), latency_ms=args.latency_ms)
    app = create_app(FakeVoipbinState(config))
    # No access log: request lines carry ?accesskey=, which must never reach a log.
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, timeout_graceful_shutdown=1)
