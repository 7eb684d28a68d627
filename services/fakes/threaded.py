"""Running a fake provider in a background thread of the test (or bench) process.

Every fake is a real HTTP server: uvicorn serving its FastAPI app from a daemon thread on a
socket bound before the thread starts, so ``port=0`` picks a free port and :attr:`port` is
right as soon as :meth:`ThreadedServer.start` returns.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Self

import uvicorn


class ThreadedServer:
    """Base of the fakes' server classes: ``with``/``async with``, or ``start()``/``stop()``.

    Subclasses provide :meth:`app` and may override :meth:`before_stop`.
    """

    label = "fake server"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def app(self) -> Any:
        """The ASGI app to serve."""
        raise NotImplementedError

    def before_stop(self) -> None:
        """Release anything that would keep requests open (hung requests, pending tasks)."""

    @property
    def is_running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> Self:
        """Bind the port, start serving, and wait until the port answers."""
        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(),
            log_config=None,
            log_level="warning",
            access_log=False,  # request lines can carry credentials (VoIPBin's ?accesskey=)
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"{self.label}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.label} did not start")
            time.sleep(0.01)
        with socket.create_connection((self.host, self.port), timeout=timeout):
            pass
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        self.before_stop()
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
