"""VoIPBin flow actions, built in one place (providers.md §1.3).

An action is `{"type": ..., "option": {...}}`. A `fetch` answer is a bare JSON array of them;
there is no `webhook`, `listen`, `gather` or `say` action. Egress formats the brain's answer
(`talk`, then `hangup` when the conversation is over); ingress adds the continuation that keeps
the call in Switchboard's hands (`digits_receive` for a DTMF menu, then the next `fetch`).
"""

from __future__ import annotations

from typing import Any

Action = dict[str, Any]

"""Inbox entry kind carrying a held `fetch` request's answer from egress to its holder."""


def talk(text: str, language: str, voice_id: str = "") -> Action:
    """Speak `text` (plain text; VoIPBin also accepts SSML)."""
    option: dict[str, Any] = {"text": text, "language": language}
    if voice_id:
        option["voice_id"] = voice_id
    return {"type": "talk", "option": option}


def hangup(reason: str = "normal") -> Action:
    """End the call."""
    return {"type": "hangup", "option": {"reason": reason}}


def digits_receive(duration_ms: int, length: int = 1, key: str = "#") -> Action:
    """Wait up to `duration_ms` for `length` keys (or the terminator `key`); the digits land
    in `${voipbin.call.digits}`."""
    return {
        "type": "digits_receive",
        "option": {"duration": duration_ms, "key": key, "length": length},
    }


def variable_set(key: str, value: str) -> Action:
    """Set a flow variable (here: clear the keys already answered)."""
    return {"type": "variable_set", "option": {"key": key, "value": value}}


def sleep(duration_ms: int) -> Action:
    """Wait, doing nothing."""
    return {"type": "sleep", "option": {"duration": duration_ms}}


def fetch(event_url: str, method: str = "POST") -> Action:
    """Ask `event_url` for the next actions."""
    return {"type": "fetch", "option": {"event_url": event_url, "event_method": method}}


def answer() -> Action:
    """Answer the incoming call."""
    return {"type": "answer"}


def spoken(text: str, *, end_call: bool, language: str, voice_id: str = "") -> list[Action]:
    """The brain's answer for a `fetch`: `talk` it, then hang up if the conversation is over."""
    actions = [talk(text, language, voice_id)] if text.strip() else []
    if end_call:
        actions.append(hangup())
    return actions


def ends_call(actions: list[Action]) -> bool:
    """Whether an action list hangs up (then nothing may follow it)."""
    return any(action.get("type") == "hangup" for action in actions)
