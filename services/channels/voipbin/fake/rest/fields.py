"""Checks of REST request fields (ids, strings, Addresses, variables), and list paging."""

from __future__ import annotations

from typing import Any

from services.channels.voipbin.fake.config import ADDRESS_TYPES, NIL_UUID
from services.channels.voipbin.fake.errors import bad_request
from services.channels.voipbin.fake.wire import go_json, is_uuid

_MAX_VARIABLES = 100
_MAX_VARIABLES_BYTES = 64 * 1024
_MAX_PAGE_SIZE = 100


def checked_uuid(value: Any, what: str = "id") -> str:
    if not is_uuid(value) or value == NIL_UUID:
        raise bad_request(f"The provided {what} is not a valid UUID.", "INVALID_ID")
    return str(value).lower()


def optional_uuid(value: Any, what: str) -> str | None:
    return None if value in (None, "", NIL_UUID) else checked_uuid(value, what)


def text_field(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_request(f"{key} must be a string")
    return value


def checked_address(value: Any, where: str) -> dict[str, str]:
    """A normalised Address ``{type, target, target_name, name, detail}``."""
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be an Address object")
    kind = value.get("type")
    if kind not in ADDRESS_TYPES:
        raise bad_request(f"{where}.type {kind!r} is not an Address type")
    fields = ("target", "target_name", "name", "detail")
    return {"type": str(kind)} | {name: text_field(value, name) for name in fields}


def checked_variables(value: Any) -> dict[str, str]:
    """Call variables as VoIPBin takes them: ``voipbin.*`` keys dropped, size limited."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise bad_request("variables must be an object of strings")
    if len(value) > _MAX_VARIABLES or len(go_json(value)) > _MAX_VARIABLES_BYTES:
        raise bad_request("variables exceed 100 keys or 64 KB")
    return {k: v for k, v in value.items() if not k.startswith("voipbin.")}


def list_page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """A list page as VoIPBin answers: newest first, older than ``page_token``."""
    try:
        size = int(query.get("page_size") or _MAX_PAGE_SIZE)
    except ValueError as exc:
        raise bad_request("page_size must be a number") from exc
    if not 0 < size <= _MAX_PAGE_SIZE:
        size = _MAX_PAGE_SIZE  # VoIPBin silently falls back to the default
    token = query.get("page_token") or ""
    newest = sorted(items, key=lambda item: item["tm_create"], reverse=True)
    chunk = [item for item in newest if not token or item["tm_create"] < token][:size]
    return {"result": chunk, "next_page_token": chunk[-1]["tm_create"] if chunk else ""}
