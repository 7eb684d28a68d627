"""The OpenAI engine reads streamed chunks as plain JSON objects: text where a chunk has
`choices[0].delta.content`, nothing (never a crash) for any other shape a server sends."""

from __future__ import annotations

from typing import Any

import pytest

from services.brain.engines.openai_engine import _delta_text


def chunk(delta: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}


def test_the_text_of_a_content_delta() -> None:
    assert _delta_text(chunk({"content": " parcel"})) == " parcel"


@pytest.mark.parametrize(
    "sent",
    [
        chunk({"role": "assistant"}),  # the role chunk
        chunk({"content": None}),
        chunk({}),  # the finish chunk
        {"choices": [], "usage": {"total_tokens": 3}},  # the usage chunk
        {"object": "chat.completion.chunk"},  # no choices at all
        {"choices": "text"},
        {"choices": ["text"]},
        chunk("text"),
        chunk({"content": 42}),
        chunk({"content": ["a", "b"]}),
        ["not", "an", "object"],
        "data",
        None,
    ],
)
def test_anything_else_carries_no_text(sent: Any) -> None:
    assert _delta_text(sent) is None
