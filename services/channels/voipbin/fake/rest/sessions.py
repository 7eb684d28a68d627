"""REST endpoints: a call's speakings (TTS sessions) and transcribes (STT sessions)."""

from __future__ import annotations

from typing import Any

from services.channels.voipbin.fake.config import NIL_UUID
from services.channels.voipbin.fake.errors import bad_request
from services.channels.voipbin.fake.rest.fields import (
    checked_uuid,
    list_page,
    optional_uuid,
    text_field,
)
from services.channels.voipbin.fake.rest.request import ApiCall, Handler
from services.channels.voipbin.fake.state import FakeVoipbinState

_DIRECTIONS = frozenset({"in", "out", "both"})


def _session_target(body: dict[str, Any]) -> str:
    """The call a speaking or transcribe is for (the fake models call references only)."""
    if body.get("reference_type") != "call":
        raise bad_request("reference_type must be 'call' in the fake")
    return checked_uuid(body.get("reference_id"), "reference_id")


def _create_speaking(fake: FakeVoipbinState, call: ApiCall) -> tuple[int, Any]:
    body = call.body()
    call_id = _session_target(body)
    option = {
        "language": text_field(body, "language"),
        "provider": text_field(body, "provider") or "elevenlabs",
        "voice_id": text_field(body, "voice_id"),
        "direction": text_field(body, "direction"),
    }
    if option["direction"] not in _DIRECTIONS | {""}:
        raise bad_request("direction must be in, out or both")
    return 201, fake.create_speaking(call_id, option)


def _say(fake: FakeVoipbinState, call: ApiCall) -> tuple[int, Any]:
    speaking_id, body = call.id(), call.body()
    text = text_field(body, "text")
    if not text:
        raise bad_request("text is required")
    return 200, fake.speak(speaking_id, "say", text)


def _create_transcribe(fake: FakeVoipbinState, call: ApiCall) -> tuple[int, Any]:
    body = call.body()
    call_id = _session_target(body)
    option = {
        "language": text_field(body, "language"),
        "direction": text_field(body, "direction"),
        "provider": text_field(body, "provider"),
        "on_end_flow_id": optional_uuid(body.get("on_end_flow_id"), "on_end_flow_id") or NIL_UUID,
    }
    if option["direction"] not in _DIRECTIONS:
        raise bad_request("direction must be in, out or both")
    if option["provider"] not in ("", "gcp", "aws"):
        raise bad_request("provider must be gcp or aws")
    return 200, fake.create_transcribe(call_id, option)


def _list_transcribes(fake: FakeVoipbinState, call: ApiCall) -> tuple[int, Any]:
    wanted_type = call.query.get("reference_type")
    wanted_id = call.query.get("reference_id")
    found = [
        t
        for t in fake.transcribes()
        if wanted_type in (None, t["reference_type"]) and wanted_id in (None, t["reference_id"])
    ]
    return 200, list_page(found, call.query)


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/speakings", _create_speaking),
    ("GET", "/speakings/{id}", lambda f, c: (200, f.speaking(c.id()))),
    ("POST", "/speakings/{id}/say", _say),
    ("POST", "/speakings/{id}/flush", lambda f, c: (200, f.speak(c.id(), "flush"))),
    ("POST", "/speakings/{id}/stop", lambda f, c: (200, f.speak(c.id(), "stop"))),
    ("POST", "/transcribes", _create_transcribe),
    ("GET", "/transcribes", _list_transcribes),
    ("GET", "/transcribes/{id}", lambda f, c: (200, f.transcribe(c.id()))),
    ("POST", "/transcribes/{id}/stop", lambda f, c: (200, f.stop_transcribe(c.id()))),
]
