"""Diagnostic: what parsing costs on the first-chunk path, `python -m bench.harness.parse_costs`.

Not part of a benchmark table; the evidence behind two changes for VAPI's first chunk
(docs/benchmarks.md, "The stream relay and lean model chunks"):

1. **Model chunks.** The fake model (`services.fakes.openai_server`, its own process, 0 ms)
   streams a 14-word first sentence word by word. Timed: the first content chunk read →
   the chunk ending the sentence, read with the openai SDK in two ways, alternating:
   - `typed`: `chat.completions.create(stream=True)`, a `ChatCompletionChunk` per token;
   - `dicts`: `client.post(..., stream_cls=AsyncStream[dict])`, what the engine does now.
2. **Untrusted JSON.** A VAPI custom-LLM request with a 6-turn history, as the fake VAPI
   builds it: `json.loads` alone, the nesting check, and `loads_untrusted` in full (µs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from openai import AsyncOpenAI, AsyncStream

from bench.harness.stats import percentile
from services.channels.vapi.fake.resolve import llm_body
from services.common.safe_json import loads_untrusted, nesting_depth
from tests.support.processes import free_port

LINE = "Caller 3 turn 1 of 6 asks where the parcel is now. It was sent last week."


async def first_sentence_ms(client: AsyncOpenAI, typed: bool) -> float:
    """First content chunk → the chunk that ends the first sentence, in ms."""
    messages = [{"role": "user", "content": LINE}]
    first: float | None = None
    if typed:
        typed_stream = await client.chat.completions.create(
            model="m", messages=messages, stream=True
        )
        async for chunk in typed_stream:
            text = chunk.choices[0].delta.content if chunk.choices else None
            first = first or (time.perf_counter() if text else None)
            if text and text.endswith("."):
                break
        await typed_stream.close()
    else:
        dict_stream = await client.post(
            "/chat/completions",
            body={"model": "m", "messages": messages, "stream": True},
            cast_to=dict,
            stream=True,
            stream_cls=AsyncStream[dict[str, Any]],
        )
        async for raw in dict_stream:
            choices = raw.get("choices")
            text = choices[0]["delta"].get("content") if choices else None
            first = first or (time.perf_counter() if text else None)
            if text and text.endswith("."):
                break
        await dict_stream.close()
    assert first is not None, "the fake sent no content"
    return (time.perf_counter() - first) * 1000


async def model_chunks(base: str, streams: int) -> list[str]:
    """Both ways in turn against the fake at `base`, after 20 unmeasured rounds."""
    async with httpx.AsyncClient() as probe:
        for _ in range(100):
            try:
                await probe.get(f"{base}/models")
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    client = AsyncOpenAI(api_key="bench", base_url=base, max_retries=0)
    timings: dict[bool, list[float]] = {True: [], False: []}
    for index in range(streams + 20):
        for typed in (True, False):
            took = await first_sentence_ms(client, typed)
            if index >= 20:  # warm-up: connections, imports, caches
                timings[typed].append(took)
    await client.close()
    rows = [
        "first content chunk → end of a 14-word first sentence, ms",
        "| chunks | n   | p50 ms | p95 ms | p99 ms | max ms |",
        "|--------|-----|--------|--------|--------|--------|",
    ]
    for typed, name in ((True, "typed"), (False, "dicts")):
        cells = " | ".join(f"{cell:>6}" for cell in _fine(timings[typed]))
        rows.append(f"| {name:<6} | {len(timings[typed]):>3} | {cells} |")
    return rows


def _fine(values: list[float]) -> tuple[str, ...]:
    """p50, p95, p99 and max with two decimals (these are sub-millisecond)."""
    return (*(f"{percentile(values, p):.2f}" for p in (50, 95, 99)), f"{max(values):.2f}")


def untrusted_json(repeat: int) -> list[str]:
    history = [{"role": "assistant", "content": "Hello, thanks for calling! How can I help?"}]
    for turn in range(6):
        history.append({"role": "user", "content": LINE.replace("turn 1", f"turn {turn}")})
        history.append({"role": "assistant", "content": f"You said: {LINE}"})
    call = {"id": "call-1", "type": "inboundPhoneCall", "customer": {"number": "+15550100"}}
    assistant = {"id": "as-1", "model": {"provider": "custom-llm", "model": "switchboard"}}
    body = json.dumps(llm_body(assistant, history, call, {"id": "pn-1"})).encode()
    text = body.decode()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("json.loads", lambda: json.loads(body)),
        ("nesting check", lambda: nesting_depth(text)),
        ("loads_untrusted", lambda: loads_untrusted(body)),
    ]
    rows = [
        f"one VAPI custom-LLM request ({len(body)} bytes), µs per parse ({repeat} repeats)",
        "| step            | µs    |",
        "|-----------------|-------|",
    ]
    for name, step in steps:
        started = time.perf_counter()
        for _ in range(repeat):
            step()
        rows.append(f"| {name:<15} | {(time.perf_counter() - started) / repeat * 1e6:5.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=5000)
    args = parser.parse_args()
    port = free_port()
    argv = [sys.executable, "-m", "services.fakes.openai_server", "--port", str(port)]
    fake = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rows = asyncio.run(model_chunks(f"http://127.0.0.1:{port}/v1", args.streams))
    finally:
        fake.terminate()
        fake.wait()
    print("\n".join([*rows, "", *untrusted_json(args.repeat)]))


if __name__ == "__main__":
    main()
