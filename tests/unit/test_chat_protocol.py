import json

import pytest

from services.ingress.channels.webchat.frames import (
    FrameError,
    MessageFrame,
    PingFrame,
    parse_client_frame,
)
from services.ingress.channels.webchat.tokens import TokenSigner, new_session_id

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
