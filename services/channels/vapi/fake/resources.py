"""The REST endpoints: assistants, calls, phone numbers, credentials (``ROUTES``)."""

from __future__ import annotations

from typing import Any

from services.channels.vapi.fake.calls import control_auth_of, new_call
from services.channels.vapi.fake.errors import ApiError
from services.channels.vapi.fake.rest import ApiCall, Handler
from services.channels.vapi.fake.state import FakeVapiState
from services.channels.vapi.fake.validate import (
    assistant_problems,
    call_problems,
    credential_problems,
    phone_number_problems,
)


def _limited(items: list[dict[str, Any]], call: ApiCall) -> list[dict[str, Any]]:
    try:
        limit = int(call.query.get("limit", "100"))
    except ValueError:
        raise ApiError(400, ["limit must be a number"]) from None
    return items[: max(0, min(limit, 1000))]


def _known_credential(state: FakeVapiState) -> Any:
    return lambda ident: state.find("credential", ident) is not None


def _checked(problems: list[str]) -> None:
    if problems:
        raise ApiError(400, problems)


# -- assistants -------------------------------------------------------------------------------


def create_assistant(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    body = call.body()
    _checked(assistant_problems(body, _known_credential(state)))
    return 201, state.create("assistant", body)


def list_assistants(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    return 200, _limited(state.items("assistant"), call)


def get_assistant(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    return 200, state.get("assistant", call.id)


def update_assistant(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    body = call.body()
    state.get("assistant", call.id)  # 404 first, as VAPI looks the assistant up first
    _checked(assistant_problems(body, _known_credential(state)))
    return 200, state.update("assistant", call.id, body)


def delete_assistant(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    return 200, state.delete("assistant", call.id)


# -- calls ------------------------------------------------------------------------------------


def create_call(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    """An outbound phone call: queued; drive it with ``answer_call`` (the callee picks up)."""
    body = call.body()
    _checked(call_problems(body))
    number_id = body.get("phoneNumberId")
    if not isinstance(number_id, str) or state.find("phone-number", number_id) is None:
        raise ApiError(
            400, "Couldn't Get Phone Number. Need Either `phoneNumberId` Or `phoneNumber`."
        )
    if not isinstance(body.get("customer"), dict):
        raise ApiError(400, "Need Either `customer` Or `customerId`.")
    assistant = body.get("assistant")
    assistant_id = body.get("assistantId")
    if assistant_id is not None:
        if not isinstance(assistant_id, str) or state.find("assistant", assistant_id) is None:
            raise ApiError(400, "Couldn't Get Assistant. `assistantId` Doesn't Exist.")
        assistant = state.find("assistant", assistant_id)
    elif isinstance(assistant, dict):
        _checked(assistant_problems(assistant, _known_credential(state)))
    created = new_call(
        state,
        "outboundPhoneCall",
        number=body["customer"].get("number"),
        phone_number_id=number_id,
        assistant_id=assistant_id,
        assistant=body.get("assistant"),
        status="queued",
    )
    if isinstance(body.get("assistantOverrides"), dict):
        created["assistantOverrides"] = body["assistantOverrides"]
    state.start_live(created, control_auth_of(assistant))
    return 201, state.get("call", created["id"])


def list_calls(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    return 200, _limited(state.items("call"), call)


def get_call(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    return 200, state.get("call", call.id)


# -- phone numbers ----------------------------------------------------------------------------


def list_phone_numbers(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    return 200, _limited(state.items("phone-number"), call)


def get_phone_number(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    return 200, state.get("phone-number", call.id)


def update_phone_number(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    body = call.body()
    state.get("phone-number", call.id)
    _checked(phone_number_problems(body, _known_credential(state)))
    assistant_id = body.get("assistantId")
    if assistant_id is not None and state.find("assistant", assistant_id) is None:
        raise ApiError(400, "Couldn't Get Assistant. `assistantId` Doesn't Exist.")
    return 200, state.update("phone-number", call.id, body)


# -- credentials ------------------------------------------------------------------------------


def create_credential(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    body = call.body()
    _checked(credential_problems(body))
    return 201, state.create("credential", body)


def list_credentials(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    return 200, _limited(state.items("credential"), call)


def get_credential(state: FakeVapiState, call: ApiCall) -> tuple[int, Any]:
    return 200, state.get("credential", call.id)


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/assistant", create_assistant),
    ("GET", "/assistant", list_assistants),
    ("GET", "/assistant/{id}", get_assistant),
    ("PATCH", "/assistant/{id}", update_assistant),
    ("DELETE", "/assistant/{id}", delete_assistant),
    ("POST", "/call", create_call),
    ("GET", "/call", list_calls),
    ("GET", "/call/{id}", get_call),
    ("GET", "/phone-number", list_phone_numbers),
    ("GET", "/phone-number/{id}", get_phone_number),
    ("PATCH", "/phone-number/{id}", update_phone_number),
    ("POST", "/credential", create_credential),
    ("GET", "/credential", list_credentials),
    ("GET", "/credential/{id}", get_credential),
]
"""Every API route as ``(method, path, handler)``; paths sit at the root, as on api.vapi.ai."""
