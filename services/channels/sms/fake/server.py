"""FakeTwilioServer: the fake served by uvicorn on a background thread; ``main`` (CLI)."""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from services.channels.sms.fake.app import create_app
from services.channels.sms.fake.config import (
    API_VERSION,
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    FakeTwilioConfig,
)
from services.channels.sms.fake.state import FakeTwilioState
from services.fakes.threaded import ThreadedServer


class FakeTwilioServer(ThreadedServer):
    """Runs the fake in a background thread: ``with``/``async with``, or ``start()``/``stop()``.

    ``port=0`` picks a free port; the socket is bound in :meth:`start` before uvicorn runs,
    so :attr:`port` and :attr:`base_url` are right as soon as it returns.
    """

    label = "fake Twilio server"

    def __init__(
        self, config: FakeTwilioConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.state = FakeTwilioState(config)

    def app(self) -> FastAPI:
        """The fake's ASGI app, bound to this server's state."""
        return create_app(self.state)

    @property
    def base_url(self) -> str:
        """The API base to give clients (``TWILIO_API_BASE``), e.g. ``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def messages_url(self) -> str:
        """The ``Messages.json`` URL of the configured account."""
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    @property
    def account_sid(self) -> str:
        """The account SID the server currently accepts."""
        return self.state.config.account_sid

    @property
    def auth_token(self) -> str:
        """The auth token the server currently accepts and signs callbacks with."""
        return self.state.config.auth_token.get_secret_value()

    @property
    def config(self) -> FakeTwilioConfig:
        """A copy of the current config."""
        return self.state.config.model_copy(deep=True)

    def configure(self, **fields: Any) -> FakeTwilioConfig:
        """Change behaviour switches; see :class:`FakeTwilioConfig`."""
        return self.state.configure(**fields)

    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first (resource plus ``status_callback``)."""
        return self.state.messages()

    def attempts(self) -> list[dict[str, Any]]:
        """Authenticated, well-formed send attempts with their outcomes, oldest first."""
        return self.state.attempts()

    def callbacks(self) -> list[dict[str, Any]]:
        """Status callback attempts (url, params, signature, status_code, error)."""
        return self.state.callbacks()

    def reset(self) -> None:
        """Clear the records, drop pending callbacks and restore the starting config."""
        self.state.reset()


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the fake until interrupted."""
    parser = argparse.ArgumentParser(description="Fake Twilio Programmable Messaging server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--account-sid", default=DEV_ACCOUNT_SID)
    parser.add_argument(
        "--auth-token", default=DEV_AUTH_TOKEN, help="the token to accept (default: dev token)"
    )
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args(argv)
    config = FakeTwilioConfig(
        account_sid=args.account_sid,
        auth_token=SecretStr(args.auth_token),
        latency_ms=args.latency_ms,
    )
    app = create_app(FakeTwilioState(config))
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=1)
