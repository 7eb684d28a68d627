"""`switchboard voipbin setup | call` against the fake VoIPBin, through the real command line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from services import cli
from services.channels.voipbin.fake import (
    FakeVoipbinConfig,
    FakeVoipbinServer,
    validate_action_array,
)
from services.channels.voipbin.settings import EVENTS_PATH, sip_uri

pytestmark = pytest.mark.integration

KEY = "setup-test-accesskey-5d1e9c"
TOKEN = "setup-test-fetch-token-0123456789abcdef"
PUBLIC = "https://switchboard.example.org"
URI_RE = re.compile(r"^sip:direct\.[0-9a-f]{12}@sip\.voipbin\.net$")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVoipbinServer]:
    with FakeVoipbinServer(FakeVoipbinConfig(access_key=SecretStr(KEY)), port=0) as server:
        monkeypatch.setenv("VOIPBIN_API_BASE", server.api_base)
        monkeypatch.setenv("VOIPBIN_ACCESS_KEY", KEY)
        monkeypatch.setenv("VOIPBIN_FETCH_TOKEN", TOKEN)
        for name in ("PUBLIC_BASE_URL", "VOIPBIN_SOURCE_NUMBER", "LOG_LEVEL"):
            monkeypatch.delenv(name, raising=False)
        yield server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def setup(capsys: pytest.CaptureFixture[str], public: str = PUBLIC, *extra: str) -> str:
    code, out, err = run(capsys, "voipbin", "setup", "--public-url", public, *extra)
    assert code == 0, out + err
    assert KEY not in out + err
    assert TOKEN not in out + err, "the fetch token is only ever shown masked"
    return out


def printed_uri(out: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith("SIP URI:")]
    return line.split()[-1]


def mutations(fake: FakeVoipbinServer, since: int = 0) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in fake.requests()[since:] if r["method"] != "GET"]


def the_flow(fake: FakeVoipbinServer) -> dict[str, Any]:
    [flow] = [flow for flow in fake.flows() if flow["name"] == "switchboard"]
    return flow


def test_setup_points_the_account_at_switchboard_and_a_second_run_changes_nothing(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    first = setup(capsys)
    flow = the_flow(fake)
    uri = printed_uri(first)
    assert URI_RE.match(uri)
    assert uri == sip_uri(flow["direct_hash"]), "the hash is read from the API, never computed"
    assert flow["id"] in first

    customer = fake.customer()
    assert customer["webhook_uri"] == PUBLIC + EVENTS_PATH
    assert customer["webhook_method"] == "POST"
    assert [{"type": a["type"], "option": a.get("option")} for a in flow["actions"]] == [
        {"type": "answer", "option": None},
        {
            "type": "fetch",
            "option": {"event_url": f"{PUBLIC}/v1/voipbin/fetch/{TOKEN}", "event_method": "POST"},
        },
    ]
    assert validate_action_array(flow["actions"]) == []

    before = len(fake.requests())
    second = setup(capsys)
    assert mutations(fake, before) == [], "an idempotent run only reads"
    assert printed_uri(second) == uri
    assert "none, already set up" in second


def test_the_webhook_secret_is_masked_unless_asked_for(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = fake.webhook_secret
    assert secret
    out = setup(capsys)
    assert secret not in out
    assert f"{secret[:4]}…" in out
    assert "VOIPBIN_WEBHOOK_SECRET" in out
    shown = setup(capsys, PUBLIC, "--show-secret")
    assert f"VOIPBIN_WEBHOOK_SECRET={secret}" in shown.splitlines()


def test_an_account_without_a_secret_is_told_events_arrive_unsigned(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.configure(webhook_secret=None)
    out = setup(capsys)
    assert "unsigned" in out
    assert "VOIPBIN_ALLOW_UNSIGNED=true" in out


def test_an_empty_direct_hash_is_regenerated_once(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.configure(empty_direct_hash=True)
    out = setup(capsys)
    flow = the_flow(fake)
    regenerations = [
        r for r in mutations(fake) if r[1] == f"/v1.0/flows/{flow['id']}/direct-hash-regenerate"
    ]
    assert len(regenerations) == 1
    assert printed_uri(out) == sip_uri(flow["direct_hash"])
    assert URI_RE.match(printed_uri(out))

    before = len(fake.requests())
    assert printed_uri(setup(capsys)) == printed_uri(out)
    assert mutations(fake, before) == []


def test_a_new_public_url_updates_the_webhook_and_the_flow_only(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.state.update_customer({"name": "Acme", "email": "ops@acme.example"})
    uri = printed_uri(setup(capsys))
    flow_id = the_flow(fake)["id"]
    before = len(fake.requests())

    moved = "https://voice.acme.example"
    out = setup(capsys, moved)
    assert mutations(fake, before) == [("PUT", "/v1.0/customer"), ("PUT", f"/v1.0/flows/{flow_id}")]
    assert printed_uri(out) == uri, "the Direct Hash survives an update"
    assert fake.customer()["webhook_uri"] == moved + EVENTS_PATH
    assert fake.customer()["name"] == "Acme", "PUT /customer sends the other fields back"
    assert fake.customer()["email"] == "ops@acme.example"
    fetch = the_flow(fake)["actions"][1]["option"]
    assert fetch["event_url"] == f"{moved}/v1/voipbin/fetch/{TOKEN}"


def test_the_flow_is_found_across_pages(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    setup(capsys)
    for number in range(105):  # newer than ours: ours is on the second page
        fake.state.create_flow(f"other {number}", "", [{"type": "answer"}], None)
    before = len(fake.requests())
    setup(capsys)
    assert mutations(fake, before) == []
    pages = [r for r in fake.requests()[before:] if r["path"] == "/v1.0/flows"]
    assert len(pages) >= 2


def test_a_wrong_accesskey_is_one_clear_line(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-accesskey-0f9e8d7c"
    monkeypatch.setenv("VOIPBIN_ACCESS_KEY", wrong)
    code, out, err = run(capsys, "voipbin", "setup", "--public-url", PUBLIC)
    assert code == 1
    assert err.strip().count("\n") == 0, err
    assert "VOIPBIN_ACCESS_KEY" in err
    assert "Traceback" not in out + err
    assert wrong not in out + err
    assert KEY not in out + err


def test_an_unreachable_api_is_one_clear_line(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOIPBIN_API_BASE", "http://127.0.0.1:9/v1.0")
    code, out, err = run(capsys, "voipbin", "setup", "--public-url", PUBLIC)
    assert code == 1
    assert err.startswith("error: cannot reach VoIPBin at http://127.0.0.1:9/v1.0")
    assert KEY not in out + err


def test_calls_run_the_setup_flow(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    setup(capsys)
    flow_id = the_flow(fake)["id"]

    code, out, err = run(capsys, "voipbin", "call", "--to", "+15551234567")
    assert code == 0, out + err
    [tel_request] = fake.requests("POST", "/calls")
    assert tel_request["body"]["flow_id"] == flow_id
    assert tel_request["body"]["destinations"] == [{"type": "tel", "target": "+15551234567"}]
    assert tel_request["body"]["source"] == {"type": "tel", "target": "+15550000000"}
    [tel_call] = fake.calls()
    assert tel_call["id"] in out, "a tel call's id comes from groupcalls[0].call_ids[0]"

    target = "sip:direct.0123456789ab@sip.voipbin.net"
    code, out, err = run(capsys, "voipbin", "call", "--to", target, "--from", "+15557770000")
    assert code == 0, out + err
    sip_request = fake.requests("POST", "/calls")[-1]
    assert sip_request["body"]["flow_id"] == flow_id
    assert sip_request["body"]["destinations"] == [
        {"type": "sip", "target": "direct.0123456789ab@sip.voipbin.net"}
    ]
    assert sip_request["body"]["source"]["target"] == "+15557770000"
    sip_call = fake.calls()[-1]
    assert sip_call["destination"]["type"] == "sip"
    assert sip_call["id"] in out


def test_a_call_before_setup_says_to_run_setup(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "voipbin", "call", "--to", "+15551234567")
    assert code == 1
    assert "switchboard voipbin setup" in err
    assert fake.requests("POST", "/calls") == []


def test_a_bad_destination_is_refused_before_calling(
    fake: FakeVoipbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    setup(capsys)
    code, _, err = run(capsys, "voipbin", "call", "--to", "5551234")
    assert code == 1
    assert "+E.164" in err
    assert fake.requests("POST", "/calls") == []
