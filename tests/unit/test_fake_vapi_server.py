"""The fake VAPI, driven over real HTTP: REST API, switches, control URLs, signing, call driver.

The call driver plays against `Receiver`, a tiny server of this module that answers
`assistant-request` and streams custom-LLM answers (valid, or broken in the ways VAPI
refuses), so the driver's strictness is proven without Switchboard.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from services.channels.vapi.auth import verifier_for
from services.channels.vapi.fake import (
    DEV_PHONE_NUMBER,
    DEV_PHONE_NUMBER_ID,
    DEV_PRIVATE_KEY,
    FakeVapiConfig,
    FakeVapiServer,
    Line,
    ServerAuth,
    create_app,
    spoken,
)
from services.channels.vapi.settings import VapiSettings
from services.channels.vapi.tools.desired import server_plan
from tests.support.vapi_receiver import ANSWER, Receiver, chunk

pytestmark = pytest.mark.unit

# Not the defaults, so the tests prove the configured keys are the ones used.
PRIVATE = "unit-private-key-3f9a"
PUBLIC = "unit-public-key-77b1"
SECRET = "unit-server-secret-0123456789"
LLM_KEY = "unit-llm-key-abcdef"
CALLER = "+15551230000"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeVapiServer]:
    config = FakeVapiConfig(private_key=SecretStr(PRIVATE), public_key=SecretStr(PUBLIC))
    with FakeVapiServer(config) as srv:
        yield srv
    assert not srv.is_running


@pytest.fixture(autouse=True)
def _fresh(server: FakeVapiServer) -> None:
    server.reset()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rec:
        yield rec


def api(
    server: FakeVapiServer, method: str, path: str, body: Any = None, *, key: str | None = PRIVATE
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.request(method, server.base_url + path, json=body, headers=headers, timeout=10)


def assert_error(response: httpx.Response, status: int, error: str) -> Any:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"message", "error", "statusCode"}
    assert (body["error"], body["statusCode"]) == (error, status)
    return body["message"]


def call(server: FakeVapiServer, receiver: Receiver, *lines: str | Line, **options: Any) -> Any:
    options = {
        "server_url": f"{receiver.url}/events",
        "auth": ServerAuth("secret", SECRET),
        "llm_key": LLM_KEY,
        "linger_s": 0.05,
        **options,
    }
    return server.start_call(CALLER, list(lines), **options)


# -- config, REST auth and errors -------------------------------------------------------------


def test_config_defaults_and_key_masking() -> None:
    config = FakeVapiConfig()
    assert config.private_key.get_secret_value() == DEV_PRIVATE_KEY
    assert (config.latency_ms, config.fail_next, config.fail_status) == (0, 0, 500)
    assert (config.rate_limit_per_second, config.retry_after) == (None, 1)
    assert [(n.id, n.number) for n in config.phone_numbers] == [
        (DEV_PHONE_NUMBER_ID, DEV_PHONE_NUMBER)
    ]
    shown = repr(config) + json.dumps(config.public())
    assert DEV_PRIVATE_KEY not in shown
    with pytest.raises(ValidationError):
        FakeVapiConfig(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        FakeVapiConfig(fail_status=418)  # type: ignore[arg-type]
    paths = {getattr(route, "path", None) for route in create_app().routes}
    assert {
        "/assistant",
        "/assistant/{id}",
        "/call",
        "/call/{id}",
        "/phone-number",
        "/phone-number/{id}",
        "/credential",
        "/credential/{id}",
        "/control/{call_id}",
        "/_fake/calls",
    } <= paths


def test_rest_wants_the_private_key_as_bearer(server: FakeVapiServer) -> None:
    assert "Missing" in assert_error(
        api(server, "GET", "/assistant", key=None), 401, "Unauthorized"
    )
    assert "Invalid Key" in assert_error(
        api(server, "GET", "/assistant", key="nope"), 401, "Unauthorized"
    )
    assert_error(api(server, "GET", "/assistant", key=PUBLIC), 401, "Unauthorized")
    basic = httpx.get(server.base_url + "/assistant", auth=(PRIVATE, ""), timeout=10)
    assert_error(basic, 401, "Unauthorized")
    assert api(server, "GET", "/assistant").json() == []
    assert [r["auth"] for r in server.requests()] == [
        "none",
        "invalid",
        "public",
        "invalid",
        "private",
    ]


def test_unknown_routes_answer_nestjs_404_and_are_recorded(server: FakeVapiServer) -> None:
    message = assert_error(api(server, "GET", "/assistants"), 404, "Not Found")
    assert message == "Cannot GET /assistants"
    assert_error(api(server, "PUT", "/assistant"), 404, "Not Found")
    assert_error(api(server, "GET", "/assistant/nope"), 404, "Not Found")
    assert [r["status"] for r in server.requests()] == [404, 404, 404]


# -- resources --------------------------------------------------------------------------------


def assistant_body(**fields: Any) -> dict[str, Any]:
    model = {"provider": "custom-llm", "url": "https://sb.example.org/v1/vapi/llm", "model": "sb"}
    return {"name": "switchboard", "model": model} | fields


def test_assistants_create_list_get_patch_delete(server: FakeVapiServer) -> None:
    first = api(server, "POST", "/assistant", assistant_body())
    assert first.status_code == 201
    created = first.json()
    assert {"id", "orgId", "createdAt", "updatedAt"} <= set(created)
    second = api(server, "POST", "/assistant", assistant_body(name="other")).json()
    listed = api(server, "GET", "/assistant").json()
    assert [a["id"] for a in listed] == [second["id"], created["id"]], "newest first"
    assert len(api(server, "GET", "/assistant?limit=1").json()) == 1
    patched = api(server, "PATCH", f"/assistant/{created['id']}", {"firstMessage": "Hi"}).json()
    assert patched["firstMessage"] == "Hi" and patched["model"] == created["model"]
    assert api(server, "GET", f"/assistant/{created['id']}").json() == patched
    assert api(server, "DELETE", f"/assistant/{second['id']}").status_code == 200
    assert_error(api(server, "GET", f"/assistant/{second['id']}"), 404, "Not Found")


def test_assistant_validation_lists_every_problem(server: FakeVapiServer) -> None:
    body = assistant_body(
        modelOutputInMessageEnabled=False,  # a typo: one letter short
        serverMessages=["status-update", "assistant-request"],
        model={"provider": "custom-llm"},
        server={"url": "not a url", "credentialId": "missing"},
    )
    messages = assert_error(api(server, "POST", "/assistant", body), 400, "Bad Request")
    text = " | ".join(messages)
    assert "property modelOutputInMessageEnabled should not exist" in text
    assert "'assistant-request'" in text, "assistant-request is not a serverMessages value"
    assert "model.url must be a URL address" in text and "model.model" in text
    assert "server.url" in text and "server.credentialId" in text
    assert_error(api(server, "POST", "/assistant", [1]), 400, "Bad Request")
    assert api(server, "GET", "/assistant").json() == []


def test_credentials_are_masked_in_answers_and_records(server: FakeVapiServer) -> None:
    llm = api(server, "POST", "/credential", {"provider": "custom-llm", "apiKey": LLM_KEY})
    assert llm.status_code == 201 and llm.json()["apiKey"] == "***"
    plan = {"type": "hmac", "secretKey": SECRET, "algorithm": "sha256"}
    custom = {"provider": "custom-credential", "name": "n", "authenticationPlan": plan}
    made = api(server, "POST", "/credential", custom).json()
    assert made["authenticationPlan"]["secretKey"] == "***"
    assert (
        api(server, "GET", f"/credential/{made['id']}").json()["authenticationPlan"]["type"]
        == "hmac"
    )
    shown = json.dumps(api(server, "GET", "/credential").json()) + json.dumps(server.requests())
    assert LLM_KEY not in shown and SECRET not in shown
    assert [c["apiKey"] for c in server.credentials(secrets=True) if "apiKey" in c] == [LLM_KEY]
    bad = {"provider": "custom-credential", "authenticationPlan": {"type": "hmac", "secretKey": 1}}
    assert "algorithm" in " ".join(
        assert_error(api(server, "POST", "/credential", bad), 400, "Bad Request")
    )
    assert_error(api(server, "POST", "/credential", {"provider": "custom-llm"}), 400, "Bad Request")


def test_phone_numbers_are_seeded_and_patched(server: FakeVapiServer) -> None:
    [number] = api(server, "GET", "/phone-number").json()
    assert (number["id"], number["number"], number["assistantId"]) == (
        DEV_PHONE_NUMBER_ID,
        DEV_PHONE_NUMBER,
        None,
    )
    server_block = {"url": "https://sb.example.org/v1/vapi/events"}
    patched = api(server, "PATCH", f"/phone-number/{DEV_PHONE_NUMBER_ID}", {"server": server_block})
    assert patched.status_code == 200 and patched.json()["server"] == server_block
    assert_error(
        api(server, "PATCH", f"/phone-number/{DEV_PHONE_NUMBER_ID}", {"assistantId": "nope"}),
        400,
        "Bad Request",
    )
    assert_error(api(server, "PATCH", "/phone-number/nope", {}), 404, "Not Found")


def test_outbound_call_is_queued_with_a_control_url(server: FakeVapiServer) -> None:
    assistant = api(server, "POST", "/assistant", assistant_body()).json()
    body = {
        "assistantId": assistant["id"],
        "phoneNumberId": DEV_PHONE_NUMBER_ID,
        "customer": {"number": CALLER},
    }
    response = api(server, "POST", "/call", body)
    assert response.status_code == 201
    made = response.json()
    assert (made["type"], made["status"], made["customer"]) == (
        "outboundPhoneCall",
        "queued",
        {"number": CALLER},
    )
    assert made["monitor"]["controlUrl"] == f"{server.base_url}/control/{made['id']}"
    assert api(server, "GET", f"/call/{made['id']}").json()["id"] == made["id"]
    assert_error(api(server, "POST", "/call", body | {"phoneNumberId": "x"}), 400, "Bad Request")
    bad_number = body | {"customer": {"number": "555"}}
    assert "E.164" in " ".join(
        assert_error(api(server, "POST", "/call", bad_number), 400, "Bad Request")
    )


# -- switches ---------------------------------------------------------------------------------


def test_fail_next_then_success_and_429_carries_retry_after(server: FakeVapiServer) -> None:
    server.configure(fail_next=1, fail_status=503)
    assert_error(api(server, "GET", "/assistant"), 503, "Service Unavailable")
    assert api(server, "GET", "/assistant").status_code == 200
    server.configure(fail_next=1, fail_status=429, retry_after=3)
    limited = api(server, "GET", "/assistant")
    assert_error(limited, 429, "Too Many Requests")
    assert limited.headers["retry-after"] == "3"
    # Refused credentials do not consume injected failures.
    server.configure(fail_next=1, fail_status=500)
    assert api(server, "GET", "/assistant", key="nope").status_code == 401
    assert api(server, "GET", "/assistant").status_code == 500


def test_rate_limit_and_latency(server: FakeVapiServer) -> None:
    server.configure(rate_limit_per_second=2)
    statuses = [api(server, "GET", "/assistant").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    server.configure(rate_limit_per_second=None, latency_ms=300)
    started = time.monotonic()
    assert api(server, "GET", "/assistant").status_code == 200
    assert time.monotonic() - started >= 0.3


# -- signing ----------------------------------------------------------------------------------


def settings(**fields: Any) -> VapiSettings:
    return VapiSettings.model_validate({"server_secret": SECRET, **fields})


MODES = [
    pytest.param({"auth_mode": "secret"}, id="legacy-secret"),
    pytest.param({"auth_mode": "bearer"}, id="bearer"),
    pytest.param(
        {"auth_mode": "bearer", "auth_header": "X-Api-Token", "bearer_prefix": False},
        id="bearer-bare",
    ),
    pytest.param({"auth_mode": "hmac"}, id="hmac-default"),
    pytest.param(
        {
            "auth_mode": "hmac",
            "hmac_algorithm": "sha512",
            "auth_header": "X-Sig",
            "hmac_prefix": "v1=",
            "hmac_timestamp_header": "X-When",
            "hmac_payload": "{timestamp}:{method}:{body}",
            "hmac_encoding": "base64",
        },
        id="hmac-custom",
    ),
]


@pytest.mark.parametrize("fields", MODES)
@pytest.mark.parametrize("unit", ["ms", "s"])
def test_each_auth_mode_verifies_with_ingress(fields: dict[str, Any], unit: str) -> None:
    configured = settings(**fields)
    body = b'{"message":{"type":"status-update"}}'
    verifier = verifier_for(configured)
    from_settings = ServerAuth.from_settings(configured, unit)  # type: ignore[arg-type]
    from_plan = ServerAuth.from_plan(server_plan(configured), unit)  # type: ignore[arg-type]
    assert from_plan is not None
    for auth in (from_settings, from_plan):
        headers = auth.headers(body, url="http://x/v1/vapi/events")
        assert verifier.verify(headers, body, time.time()) is None, headers
        if auth.mode == "hmac":
            assert verifier.verify(headers, body + b" ", time.time()) == "bad_credential"
    forged = ServerAuth.from_settings(settings(**fields, server_secret="another-secret-123"))
    assert verifier.verify(forged.headers(body), body, time.time()) == "bad_credential"
    assert SECRET not in repr(from_settings)


def test_hmac_signature_by_hand() -> None:
    auth = ServerAuth("hmac", SECRET, prefix="sha256=", encoding="base64", timestamp_unit="s")
    body = b'{"a":1}'
    headers = auth.headers(body, now=1_760_000_000.5)
    assert headers["x-timestamp"] == "1760000000"
    digest = hmac.new(SECRET.encode(), b"1760000000." + body, hashlib.sha256).digest()
    assert headers["x-signature"] == "sha256=" + base64.b64encode(digest).decode()
    millis = ServerAuth("hmac", SECRET).headers(body, now=1_760_000_000.5)
    assert millis["x-timestamp"] == "1760000000500"
    legacy = ServerAuth("secret", SECRET).headers(body)
    assert legacy == {"X-Vapi-Secret": SECRET}


# -- the call driver --------------------------------------------------------------------------


def test_a_call_plays_like_vapi(server: FakeVapiServer, receiver: Receiver) -> None:
    result = call(server, receiver, "Do you ship to Canada?", "Thanks")
    assert not result.failed and result.ended_reason == "customer-ended-call"
    assert result.greeting == "Hi, this is Switchboard."
    heard = "Sure, we ship to Canada in five days."
    assert result.heard == [heard, heard]
    assert [t.done for t in result.turns] == [True, True]
    assert receiver.types() == [
        "assistant-request",
        "status-update",
        "conversation-update",
        "conversation-update",
        "status-update",
        "end-of-call-report",
    ]
    for event in receiver.events:
        assert event["headers"]["x-vapi-secret"] == SECRET
        assert event["json"]["message"]["call"]["id"] == result.call_id
    statuses = [e["json"]["message"]["status"] for e in receiver.of_type("status-update")]
    assert statuses == ["in-progress", "ended"]
    [report] = receiver.of_type("end-of-call-report")
    report_body = report["json"]["message"]
    assert report_body["endedReason"] == "customer-ended-call"
    assert {"artifact", "analysis"} <= set(report_body)
    assert "User: Do you ship to Canada?" in report_body["artifact"]["transcript"]
    first, second = (r["json"] for r in receiver.llm)
    for request in receiver.llm:
        assert request["headers"]["authorization"] == f"Bearer {LLM_KEY}"
    assert first["stream"] is True and first["model"] == "switchboard"
    the_call = first["call"]
    assert (the_call["id"], the_call["type"], the_call["customer"]) == (
        result.call_id,
        "inboundPhoneCall",
        {"number": CALLER},
    )
    assert the_call["monitor"]["controlUrl"] == f"{server.base_url}/control/{result.call_id}"
    assert first["messages"] == [
        {"role": "assistant", "content": "Hi, this is Switchboard."},
        {"role": "user", "content": "Do you ship to Canada?"},
    ]
    assert second["messages"] == [
        *first["messages"],
        {"role": "assistant", "content": heard},
        {"role": "user", "content": "Thanks"},
    ]
    stored = server.call_result(result.call_id)
    assert stored is not None and stored["heard"] == [heard, heard]
    assert server.call(result.call_id)["status"] == "ended"


def test_a_chunk_without_choices_fails_the_call(server: FakeVapiServer, receiver: Receiver) -> None:
    bare = 'data: {"function_call": {"name": "transferCall"}}\n\n'
    receiver.stream = lambda body: [chunk("Let me "), bare, "data: [DONE]\n\n"]
    result = call(server, receiver, "Transfer me", "Hello?")
    assert result.failed and result.ended_reason == "pipeline-error-custom-llm-llm-failed"
    assert "choices" in result.turns[0].error
    assert len(result.turns) == 1, "the call is over: the second line is never asked"
    [report] = receiver.of_type("end-of-call-report")
    assert report["json"]["message"]["endedReason"] == result.ended_reason


def test_a_stream_without_done_fails_the_call(server: FakeVapiServer, receiver: Receiver) -> None:
    receiver.stream = lambda body: [chunk("Sure."), chunk(finish="stop")]
    result = call(server, receiver, "Hi")
    assert result.ended_reason == "pipeline-error-custom-llm-llm-failed"
    assert "[DONE]" in result.turns[0].error
    assert result.turns[0].heard == "Sure."


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, "pipeline-error-custom-llm-500-server-error"),
        (503, "pipeline-error-custom-llm-503-server-overloaded-error"),
        (401, "pipeline-error-custom-llm-401-unauthorized"),
        (502, "pipeline-error-custom-llm-llm-failed"),
    ],
)
def test_a_non_2xx_fails_the_call(
    server: FakeVapiServer, receiver: Receiver, status: int, reason: str
) -> None:
    receiver.status = status
    result = call(server, receiver, "Hi")
    assert result.failed and result.ended_reason == reason
    assert result.turns[0].status_code == status


def test_a_slow_or_non_streaming_llm_fails_the_call(
    server: FakeVapiServer, receiver: Receiver
) -> None:
    receiver.delay_s = 2.0
    slow = call(server, receiver, "Hi", llm_timeout_s=0.5)
    assert slow.ended_reason == "pipeline-error-custom-llm-llm-failed"
    assert "timed out" in slow.turns[0].error
    receiver.delay_s = 0.0
    receiver.gap_s = 0.3
    long = call(server, receiver, "Hi", turn_timeout_s=0.5)
    assert long.ended_reason == "pipeline-error-custom-llm-llm-failed"
    assert long.turns[0].heard, "what was heard before the deadline is kept"


def test_assistant_request_deadline_and_answers(server: FakeVapiServer, receiver: Receiver) -> None:
    receiver.answer_delay_s = 1.5
    late = call(server, receiver, "Hi", assistant_request_timeout_s=0.5)
    assert late.failed and late.ended_reason == "assistant-request-failed"
    assert late.turns == [] and receiver.llm == []
    receiver.answer_delay_s = 0.0
    for answer, reason in [
        ({}, "assistant-request-returned-no-assistant"),
        ({"error": "Sorry, we are closed."}, "assistant-request-returned-error"),
        (
            {"assistant": {"model": {"provider": "custom-llm"}}},
            "assistant-request-returned-invalid-assistant",
        ),
        ({"assistantId": "unknown"}, "assistant-not-found"),
        (
            {"destination": {"type": "number", "number": "+15550000001"}},
            "assistant-request-returned-forwarding-phone-number",
        ),
    ]:
        receiver.answer = lambda body, answer=answer: answer  # type: ignore[misc]
        result = call(server, receiver, "Hi")
        assert result.ended_reason == reason, answer
    assert result.failed
    assert call(server, receiver, "Hi").turns == []


def test_barge_in_cuts_what_was_heard(server: FakeVapiServer, receiver: Receiver) -> None:
    receiver.gap_s = 0.05
    result = call(
        server, receiver, Line("Do you ship to Canada?", interrupt_after_chars=12), "Wait"
    )
    first, second = result.turns
    assert first.interrupted and not first.done
    assert first.heard == "Sure, we shi" == spoken("".join(ANSWER))[:12]
    assert second.heard == "Sure, we ship to Canada in five days."
    [interrupted] = receiver.of_type("user-interrupted")
    assert interrupted["json"]["message"]["turnId"] == first.turn_id
    follow_up = receiver.llm[1]["json"]["messages"]
    assert follow_up[-2:] == [
        {"role": "assistant", "content": "Sure, we shi"},
        {"role": "user", "content": "Wait"},
    ]


def test_model_output_in_messages_sends_what_was_written(
    server: FakeVapiServer, receiver: Receiver
) -> None:
    receiver.answer = lambda body: {
        "assistant": receiver.assistant(modelOutputInMessagesEnabled=True)
    }
    call(server, receiver, Line("Hi", interrupt_after_chars=10), "Go on")
    assert receiver.llm[1]["json"]["messages"][-2]["content"].startswith("Sure, <flush />")


def test_end_call_on_the_control_url_stops_the_call_mid_stream(
    server: FakeVapiServer, receiver: Receiver
) -> None:
    async def hang_up(body: dict[str, Any]) -> None:
        url = body["call"]["monitor"]["controlUrl"]
        async with httpx.AsyncClient() as http:
            await http.post(url, json={"type": "end-call"})

    receiver.on_first_chunk = hang_up
    receiver.gap_s = 0.5
    result = call(server, receiver, "Hi", "Are you there?")
    assert result.ended_reason == "assistant-ended-call" and not result.failed
    assert len(receiver.llm) == 1 and result.turns[0].heard == "Sure, "
    [control] = server.control_log(result.call_id)
    assert (control["type"], control["status"], control["during_stream"]) == ("end-call", 200, True)


def test_say_and_end_after_spoken_between_turns(server: FakeVapiServer, receiver: Receiver) -> None:
    said: list[int] = []

    async def say_once(body: dict[str, Any]) -> None:
        if said:
            return
        said.append(1)
        url = body["call"]["monitor"]["controlUrl"]

        async def later() -> None:
            await asyncio.sleep(0.3)  # after the stream: VAPI is said to break a stream on say
            async with httpx.AsyncClient() as http:
                await http.post(
                    url, json={"type": "say", "content": "Goodbye!", "endCallAfterSpoken": True}
                )

        asyncio.get_running_loop().create_task(later())

    receiver.on_first_chunk = say_once
    result = call(server, receiver, "Bye", linger_s=2.0)
    assert result.said_by_control == ["Goodbye!"]
    assert result.ended_reason == "assistant-ended-call-after-message-spoken"
    assert {"role": "assistant", "content": "Goodbye!"} in result.transcript
    [control] = server.control_log(result.call_id)
    assert control["during_stream"] is False
    ended = httpx.post(control_url(server, result.call_id), json={"type": "say", "content": "x"})
    assert_error(ended, 400, "Bad Request")


def control_url(server: FakeVapiServer, call_id: str) -> str:
    return f"{server.base_url}/control/{call_id}"


def test_control_url_checks(server: FakeVapiServer) -> None:
    assistant = assistant_body(monitorPlan={"controlAuthenticationEnabled": True})
    made = api(server, "POST", "/assistant", assistant).json()
    body = {
        "assistantId": made["id"],
        "phoneNumberId": DEV_PHONE_NUMBER_ID,
        "customer": {"number": CALLER},
    }
    the_call = api(server, "POST", "/call", body).json()
    url = the_call["monitor"]["controlUrl"]
    say = {"type": "say", "content": "Hello"}
    assert_error(httpx.post(url, json=say), 401, "Unauthorized")
    assert_error(
        httpx.post(url, json=say, headers={"Authorization": f"Bearer {PRIVATE}"}),
        401,
        "Unauthorized",
    )
    authorized = {"Authorization": f"Bearer {PUBLIC}"}
    wrapped = httpx.post(url, json={"message": say}, headers=authorized)
    assert_error(wrapped, 400, "Bad Request")
    assert httpx.post(url, json=say, headers=authorized).status_code == 200
    assert_error(httpx.post(control_url(server, "nope"), json=say), 404, "Not Found")
    log = server.control_log(the_call["id"])
    assert [(c["type"], c["status"], c["authorized"]) for c in log] == [
        ("say", 401, False),
        ("say", 401, False),
        (None, 400, True),
        ("say", 200, True),
    ]


def test_outbound_call_is_answered_with_its_assistant(
    server: FakeVapiServer, receiver: Receiver
) -> None:
    assistant = receiver.assistant(
        name="sb", server={"url": f"{receiver.url}/events", "secret": SECRET}
    )
    made = api(server, "POST", "/assistant", assistant).json()
    body = {
        "assistantId": made["id"],
        "phoneNumberId": DEV_PHONE_NUMBER_ID,
        "customer": {"number": CALLER},
    }
    queued = api(server, "POST", "/call", body).json()
    result = server.answer_call(queued["id"], ["Who is this?"], target=None, linger_s=0.05)
    assert result.call_type == "outboundPhoneCall" and result.heard[0].startswith("Sure")
    assert "assistant-request" not in receiver.types(), "the call names its assistant"
    assert receiver.events[0]["headers"]["x-vapi-secret"] == SECRET, "the server's inline secret"
    assert receiver.llm[0]["headers"].get("authorization") is None, "no custom-llm credential yet"


def test_targets_come_from_what_setup_left(server: FakeVapiServer, receiver: Receiver) -> None:
    """No overrides: the phone number's server and credential, the org's custom-llm key."""
    plan = {"type": "bearer", "token": SECRET, "headerName": "X-Token", "bearerPrefixEnabled": True}
    credential = api(
        server, "POST", "/credential", {"provider": "custom-credential", "authenticationPlan": plan}
    ).json()
    api(server, "POST", "/credential", {"provider": "custom-llm", "apiKey": LLM_KEY})
    number = {"server": {"url": f"{receiver.url}/events", "credentialId": credential["id"]}}
    api(server, "PATCH", f"/phone-number/{DEV_PHONE_NUMBER_ID}", number)
    result = server.start_call(CALLER, ["Hi"], linger_s=0.05)
    assert not result.failed, result.turns
    request = receiver.of_type("assistant-request")[0]
    assert request["headers"]["x-token"] == f"Bearer {SECRET}"
    assert request["json"]["message"]["phoneNumber"]["id"] == DEV_PHONE_NUMBER_ID
    assert receiver.llm[0]["headers"]["authorization"] == f"Bearer {LLM_KEY}"
    assert receiver.llm[0]["json"]["phoneNumber"]["number"] == DEV_PHONE_NUMBER


def test_web_call_and_the_fake_calls_control(server: FakeVapiServer, receiver: Receiver) -> None:
    body = {
        "web": True,
        "lines": ["Hi", {"text": "More", "interrupt_after_chars": 4}],
        "server_url": f"{receiver.url}/events",
        "auth": {"mode": "bearer", "secret": SECRET},
        "llm_key": LLM_KEY,
        "linger_s": 0.05,
    }
    response = httpx.post(f"{server.base_url}/_fake/calls", json=body, timeout=30)
    assert response.status_code == 200
    result = response.json()
    assert result["call_type"] == "webCall" and result["number"] is None
    assert result["heard"] == ["Sure, we ship to Canada in five days.", "Sure"]
    assert "customer" not in receiver.llm[0]["json"]["call"]
    assert receiver.events[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    stored = httpx.get(f"{server.base_url}/_fake/calls/{result['call_id']}").json()
    assert stored["ended_reason"] == "customer-ended-call"
    assert httpx.post(f"{server.base_url}/_fake/calls", json={"lines": 3}).status_code == 422


@pytest.mark.asyncio
async def test_astart_call_from_async_code(server: FakeVapiServer, receiver: Receiver) -> None:
    with pytest.raises(RuntimeError, match="astart_call"):
        server.start_call(CALLER, ["Hi"])
    result = await server.astart_call(
        CALLER,
        ["Hi"],
        server_url=f"{receiver.url}/events",
        auth=ServerAuth("secret", SECRET),
        llm_key=LLM_KEY,
        linger_s=0.05,
    )
    assert result.heard == ["Sure, we ship to Canada in five days."]


def test_main_serves_the_fake() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.channels.vapi.fake",
            "--port",
            str(port),
            "--private-key",
            PRIVATE,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/phone-number",
                    headers={"Authorization": f"Bearer {PRIVATE}"},
                    timeout=2,
                )
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()[0]["id"] == DEV_PHONE_NUMBER_ID
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert PRIVATE.encode() not in output
