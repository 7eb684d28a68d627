"""Serve an ASGI app (lifespan included) with uvicorn in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI


@contextlib.asynccontextmanager
async def serving(app: FastAPI, ready_timeout_s: float = 90.0) -> AsyncIterator[str]:
    """Run `app` on a free local port until the block ends; yields its base URL once its
    `/readyz` answers 200 (Kafka connected, consumers subscribed)."""
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP; without it
    # every small response waits ~40 ms for Nagle's algorithm.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # log_config=None: keep the logging the test session configured.
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await _wait_ready(url, task, ready_timeout_s)
        yield url
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def _wait_ready(url: str, task: asyncio.Task[None], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if task.done():
                raise RuntimeError(f"{url} stopped while starting: {task.exception()!r}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout_s}s")
