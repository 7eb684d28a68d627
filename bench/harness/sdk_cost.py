"""Diagnostic: client-side CPU per chat completion, `python -m bench.harness.sdk_cost`.

Not part of the table. It isolates the cost of the brain's model client: the same request
(system prompt, a 20-entry history, the new message) sent to the fake model server (latency
0, its own process) by

- `create`: `client.chat.completions.create(messages=...)`, what `OpenAIEngine` did first;
- `extra`:  `create(messages=[], extra_body={"messages": ...})`, skipping the SDK's
            recursive request transform: what `OpenAIEngine` does now (`as_sent`);
- `post`:   `client.post("/chat/completions", body=..., cast_to=ChatCompletion)`;
- `raw`:    plain `httpx2.AsyncClient.post` and `json()`,

at concurrency 1 and 100, reporting calls/s and this process's CPU ms per call; then
`extra` at concurrency 500 (benchmark 3's fan-out) with the SDK's default pool
(`max_keepalive_connections=100`) and with keep-alive for 1,000 connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import openai
import uvloop
from openai.types.chat import ChatCompletion

from bench.harness import procs
from bench.harness.infra import BENCH_DATA_DIR

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are the assistant of a small shop. " * 12},
    *(
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} about opening hours"}
        for i in range(20)
    ),
    {"role": "user", "content": "What are your hours?"},
]
Call = Callable[[], Awaitable[str | None]]


def variants(client: openai.AsyncOpenAI, raw: httpx2.AsyncClient) -> dict[str, Call]:
    async def create() -> str | None:
        done = await client.chat.completions.create(model="fake-model", messages=MESSAGES)
        return done.choices[0].message.content

    async def extra() -> str | None:
        done = await client.chat.completions.create(
            model="fake-model", messages=[], extra_body={"messages": MESSAGES}
        )
        return done.choices[0].message.content

    async def post() -> str | None:
        body = {"model": "fake-model", "messages": MESSAGES}
        done = await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        return done.choices[0].message.content

    async def plain() -> str | None:
        body = {"model": "fake-model", "messages": MESSAGES}
        response = await raw.post("/chat/completions", json=body)
        return str(response.json()["choices"][0]["message"]["content"])

    return {"create": create, "extra": extra, "post": post, "raw": plain}


async def measure(call: Call, total: int, concurrency: int) -> tuple[float, float]:
    """(calls per second, CPU ms per call) of `total` calls, `concurrency` at a time."""
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            assert await call()

    await asyncio.gather(*(one() for _ in range(50)))  # connections and caches warm
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return total / wall, cpu * 1000 / total


async def run(base_url: str, total: int) -> list[str]:
    lines = []
    client = openai.AsyncOpenAI(api_key="bench-key", base_url=base_url, max_retries=0)
    headers = {"authorization": "Bearer bench-key"}
    raw = httpx2.AsyncClient(base_url=base_url, headers=headers, timeout=20)
    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000)
    keepalive = openai.AsyncOpenAI(
        api_key="bench-key",
        base_url=base_url,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(limits=limits),
    )
    runs: list[tuple[str, Call, int]] = [
        (name, call, concurrency)
        for concurrency in (1, 100)
        for name, call in variants(client, raw).items()
    ]
    runs.append(("extra", variants(client, raw)["extra"], 500))
    runs.append(("extra, keep-alive 1000", variants(keepalive, raw)["extra"], 500))
    try:
        for name, call, concurrency in runs:
            rate, cpu_ms = await measure(call, total * max(1, concurrency // 100), concurrency)
            lines.append(
                f"{name:22s} concurrency {concurrency:3d}: {rate:6.0f} calls/s,"
                f" client CPU {cpu_ms:.2f} ms/call"
            )
    finally:
        await client.close()
        await keepalive.close()
        await raw.aclose()
    return lines


def main() -> None:
    log_dir = BENCH_DATA_DIR / "logs" / "sdk-cost"
    model = procs.fake_model(0, "bench-key", log_dir).start().wait_ready()
    try:
        for line in uvloop.run(run(model.url + "/v1", total=500)):
            print(line)
    finally:
        model.stop()


if __name__ == "__main__":
    main()
