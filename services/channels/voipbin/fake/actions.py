"""Flow actions: the checks VoIPBin applies to an action array (REST bodies, fetch replies)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from services.channels.voipbin.fake.config import ACTION_TYPES, NIL_UUID
from services.channels.voipbin.fake.errors import bad_request
from services.channels.voipbin.fake.wire import is_uuid


def action_problem(index: int, action: Any) -> tuple[str, str] | None:
    """(reason, message) for the first thing VoIPBin would reject in one action, if any."""
    where = f"actions[{index}]"
    if not isinstance(action, dict):
        return "INVALID_ARGUMENT", f"{where} is not a JSON object"
    kind = action.get("type")
    if not isinstance(kind, str) or kind == "":
        return "INVALID_ARGUMENT", f"{where} has no string 'type'"
    if kind not in ACTION_TYPES:
        return "INVALID_ACTION_TYPE", f"{where} has unknown type {kind!r}"
    if "option" in action and not isinstance(action["option"], dict):
        return "INVALID_ARGUMENT", f"{where}.option is not a JSON object"
    for key in ("id", "next_id"):
        if key in action and not is_uuid(action[key]):
            return "INVALID_ARGUMENT", f"{where}.{key} is not a UUID"
    return None


def validate_action_array(payload: Any) -> list[str]:
    """Why ``payload`` is not an action array VoIPBin accepts (empty list: it is valid).

    It must be a *bare* JSON array of action objects with known types; the
    ``{"actions": [...]}`` shape from some tutorials is invalid.
    """
    if isinstance(payload, dict):
        keys = ", ".join(sorted(payload)) or "none"
        return [
            "the body must be a bare JSON array of actions, not an object "
            f"(keys: {keys}); VoIPBin fails to parse it and stops the flow"
        ]
    if not isinstance(payload, list):
        return [f"the body must be a bare JSON array of actions, not {type(payload).__name__}"]
    problems = (action_problem(i, action) for i, action in enumerate(payload))
    return [problem[1] for problem in problems if problem is not None]


def checked_actions(value: Any) -> list[dict[str, Any]]:
    """Validated actions for a flow or call; each stored action gets an ``id``."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("actions must be a JSON array")
    for index, action in enumerate(value):
        problem = action_problem(index, action)
        if problem is not None:
            raise bad_request(problem[1], problem[0])
    return [
        {"id": a.get("id") or str(uuid.uuid4()), "next_id": a.get("next_id") or NIL_UUID} | a
        for a in copy.deepcopy(value)
    ]
