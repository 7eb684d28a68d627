"""Golden files of a channel: `services/channels/<channel>/fixtures/`.

- `profile.json`: the `ChannelProfile` every message of the channel carries (default
  settings).
- `inbound/*.json`: provider requests and what ingress must publish for them:

      {"description": ...,
       "requests": [{<how to send it: channel-specific>, "response": {"status": 200, ...}}],
       "expected": [{"channel", "kind", "provider_message_id", "address",
                     "conversation_id", "text", "reply", "heard"?}]}

  `reply` is the reply mode's kind; `heard` is there when the message carries one (a speech
  channel that knows what the caller heard of the previous answer: VAPI). `event_id`,
  `occurred_at` and `trace` are not compared
  (they are new for every delivery); the profile is compared with `profile.json`. The keys
  of a request besides `response` are the channel's own (a form for Twilio, a JSON body for
  VoIPBin, frames for web chat); each conformance subclass knows how to send them, signed.
  A streamed HTTP answer (server-sent events) is pinned as `frames` too, one per event.
- `outbound/*.json`: replies and the exact wire traffic they cause:

      {"description": ..., "replies": [<Reply fields>], "errors": [<PermanentFailure reasons>],
       "wire": [<what the provider (or the browser) received, normalized>]}

  `<name>` placeholders (a call id the fake made up, the accesskey) stand for values known
  only at run time; the conformance subclass fills them in and takes them out again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPARED = ("channel", "kind", "provider_message_id", "address", "conversation_id", "text")


def golden_files(folder: Path, kind: str) -> list[Path]:
    """The golden files of one kind (`inbound`, `outbound`), sorted by name."""
    return sorted((folder / "fixtures" / kind).glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def summary(event: Mapping[str, Any]) -> dict[str, Any]:
    """What a golden pins of a published `InboundMessage` (as JSON)."""
    pinned = {**{key: event[key] for key in COMPARED}, "reply": event["reply"]["kind"]}
    if event.get("heard") is not None:
        pinned["heard"] = event["heard"]
    return pinned


@dataclass(frozen=True)
class Outcome:
    """What the provider (or the browser) got back for one request."""

    status: int
    """HTTP status; 101 for an accepted WebSocket handshake."""
    text: str = ""
    content_type: str = ""
    frames: list[dict[str, Any]] = field(default_factory=list)
    """WebSocket frames received, in order; or the events of a streamed HTTP answer."""

    def problems(self, expected: Mapping[str, Any] | None, where: str) -> list[str]:
        """How this differs from a golden request's `response` (only the keys it gives)."""
        if not expected:
            return []
        found: dict[str, Any] = {
            "status": self.status,
            "text": self.text,
            "content_type": self.content_type.split(";")[0].strip(),
            "frames": self.frames,
        }
        if "json" in expected:
            try:
                found["json"] = json.loads(self.text)
            except ValueError:
                found["json"] = f"<not JSON: {self.text[:80]!r}>"
        return [
            f"{where}: {key} is {found[key]!r}, the golden says {value!r}"
            for key, value in expected.items()
            if found[key] != value
        ]
