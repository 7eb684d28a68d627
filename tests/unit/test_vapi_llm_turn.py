"""The custom-LLM route's pure parts: reading a turn from VAPI's body, the order of streamed
parts, and the exact chunk format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.channels.vapi.held import HeldStream
from services.channels.vapi.llm_turn import (
    DEFAULT_MODEL,
    MAX_TEXT_CHARS,
    TurnError,
    parse_turn,
    without_filler,
)
from services.channels.vapi.sse import DONE, Chunks
from shared.contracts.inbox import StreamPart

pytestmark = pytest.mark.unit

CALL = {"id": "call-1", "customer": {"number": "+14155550123"}}


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), "stream": True, "call": CALL, **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def test_the_turn_is_the_last_user_message_numbered_by_user_messages() -> None:
    turn = parse_turn(
        body(
            {"role": "system", "content": "Be brief."},
            assistant("Hello, how can I help?"),
            user("Hi."),
            assistant("Hello!"),
            user(
                [
                    {"type": "text", "text": "When do "},
                    {"type": "image_url"},
                    {"type": "text", "text": "you open?"},
                ]
            ),
        )
    )
    assert turn.message_id == "call-1:turn:2"
    assert turn.text == "When do you open?"
    assert turn.heard == "Hello!"
    assert turn.call.number == "+14155550123"
    assert turn.model == "m" and turn.stream


def test_heard_is_only_the_answer_right_before_the_turn() -> None:
    # Two user messages in a row: the assistant message before them answered an earlier turn.
    assert parse_turn(body(assistant("Hello!"), user("Hi."), user("Hello?"))).heard is None
    # Tool and system messages in between do not count; an answer without text is unknown.
    tool = {"role": "tool", "content": "done"}
    assert parse_turn(body(assistant("Done."), tool, user("Thanks"))).heard == "Done."
    assert parse_turn(body(assistant(None), user("Thanks"))).heard is None
    assert parse_turn(body(user("First words"))).heard is None


def test_a_retried_request_is_the_same_turn() -> None:
    request = body(user("Hi."), assistant("Hello!"), user("Bye."))
    assert parse_turn(request).message_id == parse_turn(json.loads(json.dumps(request))).message_id


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ([], "not_an_object"),
        ({"messages": [user("hi")]}, "no_call"),
        ({"call": {"id": ""}, "messages": [user("hi")]}, "no_call"),
        ({"call": {"id": 7}, "messages": [user("hi")]}, "no_call"),
        ({"call": CALL, "messages": [assistant("hi")]}, "no_user_message"),
        ({"call": CALL, "messages": "hi"}, "no_user_message"),
        ({"call": CALL}, "no_user_message"),
    ],
)
def test_only_a_missing_call_or_user_message_is_refused(request_body: Any, code: str) -> None:
    with pytest.raises(TurnError) as refused:
        parse_turn(request_body)
    assert refused.value.code == code


def test_everything_else_is_tolerated() -> None:
    turn = parse_turn(
        {
            "call": {"id": "call-2"},  # a web call: no number
            "messages": ["junk", {"role": 5}, user({"odd": True}), {"extra": 1}],
            "model": {"not": "a string"},
            "stream": "yes",
        }
    )
    assert turn.text == "" and turn.heard is None
    assert turn.model == DEFAULT_MODEL and turn.stream
    assert parse_turn(body(user("x" * 9000))).text == "x" * MAX_TEXT_CHARS
    assert not parse_turn(body(user("hi"), stream=False)).stream


def test_the_filler_is_not_part_of_what_was_heard() -> None:
    assert without_filler("One moment. We open at nine.", "One moment.") == "We open at nine."
    assert without_filler("We open at nine.", "One moment.") == "We open at nine."
    assert without_filler(None, "One moment.") is None


def test_parts_are_taken_in_order_first_copy_only_up_to_the_final_one() -> None:
    stream = HeldStream("call-1:turn:1")

    def part(index: int, text: str, final: bool = False) -> StreamPart:
        return StreamPart(correlation_id="call-1:turn:1", part=index, text=text, final=final)

    stream.add(part(1, "second"))
    assert stream.ready() == []  # part 0 is still missing
    stream.add(part(0, "first"))
    stream.add(part(0, "first again"))
    assert [p.text for p in stream.ready()] == ["first", "second"]
    stream.add(part(1, "second again"))  # already taken
    stream.add(part(3, "", final=True))
    stream.add(part(2, "third"))
    assert [p.text for p in stream.ready()] == ["third", ""]
    assert stream.finished
    stream.add(part(4, "after the end"))
    assert stream.ready() == []


def test_the_chunk_wire_format_is_pinned() -> None:
    chunks = Chunks("chatcmpl-1", "switchboard", 1_760_000_000)
    lines = [chunks.role(), chunks.content("Hello."), chunks.finish(), DONE]
    assert b"".join(lines).decode() == (
        'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,'
        '"model":"switchboard","choices":[{"index":0,"delta":{"role":"assistant"},'
        '"finish_reason":null}]}\n\n'
        'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,'
        '"model":"switchboard","choices":[{"index":0,"delta":{"content":"Hello."},'
        '"finish_reason":null}]}\n\n'
        'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,'
        '"model":"switchboard","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        "data: [DONE]\n\n"
    )
    assert chunks.completion("Hello.") == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": "switchboard",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello."},
                "finish_reason": "stop",
            }
        ],
    }
