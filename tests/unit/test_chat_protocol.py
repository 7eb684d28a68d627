import json

import pytest

from services.channels.webchat.frames import (
    FrameError,
    MessageFrame,
    PingFrame,
    error_frame,
    frame_text,
    parse_client_frame,
)
from services.channels.webchat.tokens import TokenSigner, new_session_id

pytestmark = pytest.mark.unit


def test_token_round_trip() -> None:
    signer = TokenSigner(b"k" * 32, ttl_s=60)
    session_id = new_session_id()
    token, expires_at = signer.issue(session_id, now=1000)
    claims = signer.verify(token, now=1030)
    assert claims is not None
    assert (claims.session_id, claims.expires_at) == (session_id, expires_at)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # forged signature
        lambda t: t.replace("v1.", "v2.", 1),
        lambda t: "",
        lambda t: "garbage",
        lambda t: t + "." + "x" * 600,
    ],
)
def test_tampered_tokens_are_refused(mutate) -> None:
    signer = TokenSigner(b"k" * 32, ttl_s=60)
    token, _ = signer.issue(new_session_id(), now=1000)
    assert signer.verify(mutate(token), now=1001) is None


def test_expired_and_foreign_tokens_are_refused() -> None:
    signer = TokenSigner(b"k" * 32, ttl_s=60)
    token, _ = signer.issue(new_session_id(), now=1000)
    assert signer.verify(token, now=1060) is None
    assert TokenSigner(b"other" * 8, ttl_s=60).verify(token, now=1001) is None


def test_valid_frames_parse() -> None:
    frame = parse_client_frame(json.dumps({"type": "message", "id": "m1", "text": " hi "}), 100)
    assert frame == MessageFrame(id="m1", text="hi")
    assert parse_client_frame('{"type":"ping"}', 100) == PingFrame()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ("[1,2]", "bad_frame"),
        ('{"type":"shout"}', "unknown_type"),
        ('{"type":"message","text":"hi"}', "bad_id"),
        ('{"type":"message","id":"","text":"hi"}', "bad_id"),
        ('{"type":"message","id":"m1","text":"   "}', "empty_text"),
        ('{"type":"message","id":"m1","text":42}', "empty_text"),
        (json.dumps({"type": "message", "id": "m1", "text": "x" * 101}), "text_too_long"),
        ("x" * 70_000, "frame_too_large"),
    ],
)
def test_bad_frames_get_clear_codes(raw: str, code: str) -> None:
    with pytest.raises(FrameError) as error:
        parse_client_frame(raw, max_text=100)
    assert error.value.code == code


# --- hostile frames: every one is a FrameError with a code, never another exception ---------

DEEP = "[" * 5000 + "]" * 5000
DEEP_IN_MESSAGE = '{"type":"message","id":"m1","text":"hi","x":' + DEEP + "}"
LONG_NUMBER = "9" * 5000
WITH_LONG_NUMBER = '{"type":"message","id":"m1","text":"hi","n":' + LONG_NUMBER + "}"


@pytest.mark.parametrize(
    ("raw", "code", "frame_id"),
    [
        # An escaped lone surrogate parses into a str that cannot be encoded again.
        ('{"type":"message","id":"m1","text":"hi \\ud800"}', "bad_unicode", "m1"),
        ('{"type":"message","id":"m1","text":"\\udfff"}', "bad_unicode", "m1"),
        # The id itself is broken: it must never be echoed back (the error frame would not
        # encode either).
        ('{"type":"message","id":"\\ud800","text":"hi"}', "bad_unicode", None),
        ('{"type":"message","id":"m\\udc00","text":"\\ud800"}', "bad_unicode", None),
        # The same, delivered as an already-decoded str (a transport that is not strict).
        ('{"type":"message","id":"m1","text":"\ud800"}', "bad_unicode", "m1"),
        ('{"type":"message","id":"\ud800","text":"hi"}', "bad_unicode", None),
        # Numbers CPython refuses to convert (more than 4,300 digits) or that overflow.
        (WITH_LONG_NUMBER, "number_too_long", None),
        ('{"type":"message","id":"m1","text":' + LONG_NUMBER + "}", "number_too_long", None),
        ('{"type":"message","id":' + LONG_NUMBER + ',"text":"hi"}', "number_too_long", None),
        ('{"type":"message","id":"m1","text":"hi","n":1e999}', "bad_number", None),
        ('{"type":"message","id":"m1","text":"hi","n":NaN}', "bad_number", None),
        # Nesting deep enough for json.loads to hit the recursion limit.
        (DEEP, "too_deep", None),
        ('{"a":' * 3000 + "1" + "}" * 3000, "too_deep", None),
        (DEEP_IN_MESSAGE, "too_deep", None),
    ],
)
def test_hostile_json_is_refused_with_a_code(raw: str, code: str, frame_id: str | None) -> None:
    with pytest.raises(FrameError) as error:
        parse_client_frame(raw, max_text=100)
    assert (error.value.code, error.value.frame_id) == (code, frame_id)
    # The error frame the server sends back must itself be sendable.
    error_frame(error.value.code, error.value.message, error.value.frame_id)
    json.dumps(error_frame(error.value.code, error.value.message, error.value.frame_id))


@pytest.mark.parametrize(
    ("frame", "code", "frame_id"),
    [
        ({"type": 1}, "unknown_type", None),
        ({"type": ["message"]}, "unknown_type", None),
        ({"type": None, "id": "m1", "text": "hi"}, "unknown_type", None),
        ({"type": "message", "id": 7, "text": "hi"}, "bad_id", None),
        ({"type": "message", "id": ["m1"], "text": "hi"}, "bad_id", None),
        ({"type": "message", "id": {"m": 1}, "text": "hi"}, "bad_id", None),
        ({"type": "message", "id": True, "text": "hi"}, "bad_id", None),
        ({"type": "message", "id": None, "text": "hi"}, "bad_id", None),
        ({"type": "message", "id": "x" * 129, "text": "hi"}, "bad_id", None),
        ({"type": "message", "id": "m\n1", "text": "hi"}, "bad_id", None),
        ({"type": "message", "id": "m\x001", "text": "hi"}, "bad_id", None),
        ({"type": "message", "id": "m1", "text": ["hi"]}, "empty_text", "m1"),
        ({"type": "message", "id": "m1", "text": {"a": "hi"}}, "empty_text", "m1"),
        ({"type": "message", "id": "m1", "text": None}, "empty_text", "m1"),
        ({"type": "message", "id": "m1", "text": False}, "empty_text", "m1"),
        ({"type": "message", "id": "m1"}, "empty_text", "m1"),
        ("message", "bad_frame", None),
        (None, "bad_frame", None),
        (12, "bad_frame", None),
    ],
)
def test_wrong_types_and_lengths_get_clear_codes(
    frame: object, code: str, frame_id: str | None
) -> None:
    with pytest.raises(FrameError) as error:
        parse_client_frame(json.dumps(frame), max_text=100)
    assert (error.value.code, error.value.frame_id) == (code, frame_id)


def test_longest_id_and_text_are_accepted() -> None:
    raw = json.dumps({"type": "message", "id": "x" * 128, "text": "y" * 100, "extra": [1]})
    assert parse_client_frame(raw, 100) == MessageFrame(id="x" * 128, text="y" * 100)


def test_a_binary_frame_is_refused_with_its_own_code() -> None:
    with pytest.raises(FrameError) as error:
        frame_text({"type": "websocket.receive", "bytes": b'{"type":"ping"}'})
    assert error.value.code == "binary_frame"
    assert frame_text({"type": "websocket.receive", "text": '{"type":"ping"}'}) == (
        '{"type":"ping"}'
    )
    with pytest.raises(FrameError):
        frame_text({"type": "websocket.receive"})


def test_error_messages_never_quote_the_input() -> None:
    marker = "SECRET-CUSTOMER-TEXT"
    hostile = [
        json.dumps({"type": "message", "id": "m1", "text": marker * 10}),
        '{"type":"message","id":"m1","text":"' + marker + '\\ud800"}',
        json.dumps({"type": marker}),
        json.dumps({"type": "message", "id": marker * 20, "text": "hi"}),
    ]
    for raw in hostile:
        with pytest.raises(FrameError) as error:
            parse_client_frame(raw, max_text=100)
        assert marker not in error.value.message
