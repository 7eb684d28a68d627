"""`switchboard vapi setup | call` and `simulate vapi` against the fake VAPI, through the real
command line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services import cli
from services.channels.vapi.auth import verifier_for
from services.channels.vapi.fake import DEV_PHONE_NUMBER_ID, FakeVapiConfig, FakeVapiServer
from services.channels.vapi.settings import EVENTS_PATH, LLM_BASE_PATH, VapiSettings
from services.channels.vapi.tools.desired import SERVER_MESSAGES
from tests.support.vapi_receiver import Receiver

pytestmark = pytest.mark.integration

KEY = "setup-test-private-key-5d1e9c"
SECRET = "setup-test-server-secret-0123456789"
LLM_KEY = "setup-test-llm-key-abcdef012345"
PUBLIC = "https://switchboard.example.org"
SECRETS = (KEY, SECRET, LLM_KEY)
VAPI_VARIABLES = (
    "VAPI_API_BASE",
    "VAPI_API_KEY",
    "VAPI_PUBLIC_KEY",
    "VAPI_AUTH_MODE",
    "VAPI_SERVER_SECRET",
    "VAPI_AUTH_HEADER",
    "VAPI_BEARER_PREFIX",
    "VAPI_HMAC_ALGORITHM",
    "VAPI_HMAC_PREFIX",
    "VAPI_HMAC_PAYLOAD",
    "VAPI_LLM_KEY",
    "PUBLIC_BASE_URL",
    "FAKE_VAPI_PORT",
    "LOG_LEVEL",
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVapiServer]:
    for name in VAPI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with FakeVapiServer(FakeVapiConfig(private_key=SecretStr(KEY)), port=0) as server:
        monkeypatch.setenv("VAPI_API_BASE", server.base_url)
        monkeypatch.setenv("VAPI_API_KEY", KEY)
        monkeypatch.setenv("VAPI_SERVER_SECRET", SECRET)
        monkeypatch.setenv("VAPI_LLM_KEY", LLM_KEY)
        yield server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def setup(capsys: pytest.CaptureFixture[str], *extra: str, public: str = PUBLIC) -> str:
    code, out, err = run(capsys, "vapi", "setup", "--public-url", public, *extra)
    assert code == 0, out + err
    for secret in SECRETS:
        assert secret not in out + err, "no key or secret is ever printed"
    return out


def writes(fake: FakeVapiServer, since: int = 0) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in fake.requests()[since:] if r["method"] != "GET"]


def the_assistant(fake: FakeVapiServer) -> dict[str, Any]:
    [assistant] = [a for a in fake.assistants() if a["name"] == "switchboard"]
    return assistant


def test_setup_creates_the_assistant_and_a_second_run_only_reads(
    fake: FakeVapiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    first = setup(capsys, "--phone-number-id", DEV_PHONE_NUMBER_ID)
    credentials = {c["provider"]: c for c in fake.credentials(secrets=True)}
    assert set(credentials) == {"custom-credential", "custom-llm"}
    server_credential, llm_credential = credentials["custom-credential"], credentials["custom-llm"]
    assert server_credential["authenticationPlan"] == {
        "type": "bearer",
        "token": SECRET,
        "headerName": "X-Vapi-Secret",
        "bearerPrefixEnabled": False,
    }, "the legacy secret, as VAPI's migration guide maps it"
    assert llm_credential["apiKey"] == LLM_KEY
    assistant = the_assistant(fake)
    assert assistant["model"] == {
        "provider": "custom-llm",
        "url": PUBLIC + LLM_BASE_PATH,
        "model": "switchboard",
    }
    assert assistant["server"] == {
        "url": PUBLIC + EVENTS_PATH,
        "credentialId": server_credential["id"],
    }
    assert assistant["serverMessages"] == SERVER_MESSAGES
    assert set(SERVER_MESSAGES) == {
        "status-update",
        "end-of-call-report",
        "user-interrupted",
        "speech-update",
        "hang",
        "tool-calls",
        "handoff-destination-request",
    }
    assert assistant["modelOutputInMessagesEnabled"] is False
    assert sorted(assistant["credentialIds"]) == sorted(
        [server_credential["id"], llm_credential["id"]]
    )
    assert assistant["monitorPlan"] == {
        "controlEnabled": True,
        "controlAuthenticationEnabled": False,
    }
    [number] = fake.phone_numbers()
    assert number["server"] == assistant["server"] and number["assistantId"] is None
    assert assistant["id"] in first and "assistant created" in first
    assert "VAPI_PUBLIC_KEY" in first, "what is left to do is printed"

    before = len(fake.requests())
    second = setup(capsys, "--phone-number-id", DEV_PHONE_NUMBER_ID)
    assert writes(fake, before) == [], "an idempotent run only reads"
    assert "none, already set up" in second
    assert len(fake.credentials()) == 2 and len(fake.assistants()) == 1


def test_changed_settings_update_only_what_differs(
    fake: FakeVapiServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(capsys)
    assistant = the_assistant(fake)
    voice = {"provider": "vapi", "voiceId": "Elliot"}
    fake.state.update("assistant", assistant["id"], {"voice": voice})
    monkeypatch.setenv("VAPI_AUTH_MODE", "hmac")
    monkeypatch.setenv("VAPI_HMAC_PREFIX", "sha256=")
    monkeypatch.setenv("VAPI_PUBLIC_KEY", "setup-test-public-key")
    before = len(fake.requests())
    out = setup(capsys, "--phone-number-id", "auto")
    assert writes(fake, before) == [
        ("POST", "/credential"),
        ("PATCH", f"/assistant/{assistant['id']}"),
        ("PATCH", f"/phone-number/{DEV_PHONE_NUMBER_ID}"),
    ]
    assert "assistant updated" in out and "setup-test-public-key" not in out
    updated = the_assistant(fake)
    assert updated["voice"] == voice, "fields set by hand are kept"
    assert updated["monitorPlan"]["controlAuthenticationEnabled"] is True
    newest = fake.credentials(secrets=True)[0]
    assert newest["authenticationPlan"]["type"] == "hmac"
    assert newest["authenticationPlan"]["signaturePrefix"] == "sha256="
    assert updated["server"]["credentialId"] == newest["id"]


@pytest.mark.parametrize(
    "mode",
    [
        {"VAPI_AUTH_MODE": "secret"},
        {"VAPI_AUTH_MODE": "bearer", "VAPI_AUTH_HEADER": "X-Token"},
        {"VAPI_AUTH_MODE": "hmac", "VAPI_HMAC_ALGORITHM": "sha512", "VAPI_HMAC_PREFIX": "v1="},
    ],
)
def test_a_call_after_setup_is_signed_as_ingress_expects(
    fake: FakeVapiServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mode: dict[str, str],
) -> None:
    for name, value in mode.items():
        monkeypatch.setenv(name, value)
    with Receiver(EVENTS_PATH, LLM_BASE_PATH) as ingress:
        setup(capsys, "--phone-number-id", "auto", public=ingress.url)
        result = fake.start_call("+15551230000", ["Hi"], linger_s=0.05)
        assert not result.failed, result.ended_reason
        verifier = verifier_for(VapiSettings())
        for event in ingress.events:
            headers = httpx.Headers(event["headers"])  # case-insensitive, as ingress reads them
            assert verifier.verify(headers, event["raw"], time.time()) is None
        assert ingress.llm[0]["headers"]["authorization"] == f"Bearer {LLM_KEY}"


def test_call_places_an_outbound_call_with_the_assistant(
    fake: FakeVapiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "vapi", "call", "--to", "+15557654321")
    assert code == 1 and "run `switchboard vapi setup` first" in err
    setup(capsys)
    code, out, err = run(capsys, "vapi", "call", "--to", "+15557654321")
    assert code == 0, err
    [request] = fake.requests("POST", "/call")
    assert request["body"] == {
        "assistantId": the_assistant(fake)["id"],
        "phoneNumberId": DEV_PHONE_NUMBER_ID,
        "customer": {"number": "+15557654321"},
    }
    [placed] = fake.state.items("call")
    assert placed["id"] in out and "[queued]" in out


def test_errors_are_one_line_without_the_key(
    fake: FakeVapiServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "vapi", "setup")
    assert code == 1 and "--public-url" in err
    monkeypatch.setenv("VAPI_API_KEY", "wrong-key-" + KEY)
    code, out, err = run(capsys, "vapi", "setup", "--public-url", PUBLIC)
    assert code == 1 and "refused the key" in err
    assert KEY not in out + err
    fake.configure(fail_next=5, fail_status=503)
    monkeypatch.setenv("VAPI_API_KEY", KEY)
    code, out, err = run(capsys, "vapi", "setup", "--public-url", PUBLIC)
    assert code == 1 and "503" in err and KEY not in out + err
    fake.configure(fail_next=0)
    code, _, err = run(capsys, "vapi", "setup", "--public-url", PUBLIC, "--phone-number-id", "x")
    assert code == 1 and "404" in err


def test_simulate_vapi_plays_a_call_against_ingress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in VAPI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with FakeVapiServer() as fake, Receiver(EVENTS_PATH, LLM_BASE_PATH) as ingress:
        monkeypatch.setenv("FAKE_VAPI_PORT", str(fake.port))
        code, out, err = run(
            capsys,
            "simulate",
            "vapi",
            "--from",
            "+15551230000",
            "--ingress-url",
            ingress.url,
            "--interrupt-after",
            "8",
            "Do you ship to Canada?",
        )
        assert code == 0, out + err
        assert out.splitlines()[1:] == [
            "agent:  Hi, this is Switchboard.",
            "caller: Do you ship to Canada?",
            "agent:  Sure, we [interrupted]",
            "ended:  customer-ended-call",
        ]
        verifier = verifier_for(VapiSettings())  # the development defaults on both sides
        request = ingress.of_type("assistant-request")[0]
        headers = httpx.Headers(request["headers"])
        assert verifier.verify(headers, request["raw"], time.time()) is None
        assert json.loads(request["raw"])["message"]["customer"] == {"number": "+15551230000"}
        assert [a["name"] for a in fake.assistants()] == ["switchboard"]
