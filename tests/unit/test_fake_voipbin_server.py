"""The fake VoIPBin, driven over real HTTP: REST API, signed event emitter, fetch driver."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from services.channels.voipbin.fake import (
    ACTION_TYPES,
    DEV_ACCESS_KEY,
    DEV_WEBHOOK_SECRET,
    ApiError,
    FakeVoipbinConfig,
    FakeVoipbinServer,
    create_app,
    fetch_actions,
    go_json,
    sip_uri,
    transcript_data,
    validate_action_array,
)

pytestmark = pytest.mark.unit

# Not the defaults, so the tests prove the configured secrets are the ones used.
KEY = "unit-test-accesskey-7f3a"
SECRET = "unit-test-webhook-secret-0123456"
HASH_RE = re.compile(r"^direct\.[0-9a-f]{12}$")
REPO_ROOT = Path(__file__).resolve().parents[2]
TALK = {"type": "talk", "option": {"text": "Hi, how can I help?", "language": "en-US"}}


class TinyServer:
    """A small HTTP server that records raw requests and answers from a script.

    ``replies`` are ``(status, body bytes, delay seconds)``, used in order; the last one
    repeats.
    """

    def __init__(self, replies: list[tuple[int, bytes, float]] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.replies = replies or [(200, b"ok", 0.0)]
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                owner.received.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "raw": raw,
                    }
                )
                index = min(len(owner.received), len(owner.replies)) - 1
                status, body, delay = owner.replies[index]
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            do_POST = do_GET = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/voipbin/events") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeVoipbinServer]:
    config = FakeVoipbinConfig(access_key=SecretStr(KEY), webhook_secret=SecretStr(SECRET))
    srv = FakeVoipbinServer(config).start()
    yield srv
    srv.stop()
    assert not srv.is_running


@pytest.fixture(autouse=True)
def _fresh(server: FakeVoipbinServer) -> None:
    server.reset()


@pytest.fixture
def receiver() -> Iterator[TinyServer]:
    rec = TinyServer()
    yield rec
    rec.close()


def api(
    server: FakeVoipbinServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = KEY,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """Call the fake's API with the accesskey in the query string, as VoIPBin wants."""
    query = dict(params or {})
    if key is not None:
        query["accesskey"] = key
    return httpx.request(
        method, server.api_base + path, params=query, json=body, headers=headers, timeout=10
    )


def assert_error(response: httpx.Response, http: int, status: str, reason: str) -> None:
    assert response.status_code == http
    error = response.json()["error"]
    assert (error["status"], error["reason"]) == (status, reason)
    assert isinstance(error["message"], str) and error["message"]
    uuid.UUID(error["request_id"])
    assert set(error) == {"status", "reason", "message", "request_id"}


def new_flow(server: FakeVoipbinServer, name: str = "switchboard") -> dict[str, Any]:
    fetch = {
        "type": "fetch",
        "option": {"event_url": "https://x.example/f", "event_method": "POST"},
    }
    body = {"name": name, "detail": "test", "actions": [{"type": "answer"}, fetch]}
    response = api(server, "POST", "/flows", body)
    assert response.status_code == 200
    flow: dict[str, Any] = response.json()
    return flow


def verify(secret: str, raw: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


# -- config and auth ----------------------------------------------------------------------


def test_defaults_routes_and_secret_masking() -> None:
    config = FakeVoipbinConfig()
    assert config.access_key.get_secret_value() == DEV_ACCESS_KEY == "dev-voipbin-accesskey"
    assert config.webhook_secret is not None
    assert config.webhook_secret.get_secret_value() == DEV_WEBHOOK_SECRET
    assert len(DEV_WEBHOOK_SECRET) == 32  # VoIPBin generates 32-character secrets
    assert (config.latency_ms, config.fail_next, config.fail_status) == (0, 0, 500)
    assert (config.rate_limit_per_second, config.retry_after) == (None, None)
    assert config.outbound_call_status == "dialing"
    assert config.empty_direct_hash is False
    assert (config.webhook_max_attempts, config.webhook_retry_delay_ms) == (3, 1000)
    assert config.webhook_timeout_s == 30.0
    shown = repr(config) + json.dumps(config.public())
    assert DEV_ACCESS_KEY not in shown and DEV_WEBHOOK_SECRET not in shown
    with pytest.raises(ValidationError):
        FakeVoipbinConfig(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        FakeVoipbinConfig(fail_status=418)  # type: ignore[arg-type]
    paths = {getattr(r, "path", None) for r in create_app().routes}
    assert {
        "/v1.0/customer",
        "/v1.0/flows",
        "/v1.0/flows/{id}",
        "/v1.0/flows/{id}/direct-hash-regenerate",
        "/v1.0/calls",
        "/v1.0/calls/{id}",
        "/v1.0/calls/{id}/hangup",
        "/v1.0/calls/{id}/talk",
        "/v1.0/speakings",
        "/v1.0/speakings/{id}/say",
        "/v1.0/speakings/{id}/flush",
        "/v1.0/speakings/{id}/stop",
        "/v1.0/transcribes",
        "/v1.0/transcribes/{id}/stop",
        "/_fake/emit",
        "/_fake/fetch",
        "/_fake/requests",
    } <= paths


def test_missing_accesskey_is_authentication_required(server: FakeVoipbinServer) -> None:
    resp = api(server, "GET", "/customer", key=None)
    assert_error(resp, 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")
    assert resp.json()["error"]["message"] == "Authentication is required."


def test_wrong_accesskey_is_invalid_credentials(server: FakeVoipbinServer) -> None:
    resp = api(server, "GET", "/customer", key="not-the-key")
    assert_error(resp, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    assert resp.json()["error"]["message"] == "The provided credentials are invalid."


def test_accesskey_as_bearer_is_refused_even_beside_a_valid_query_key(
    server: FakeVoipbinServer,
) -> None:
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert_error(
        api(server, "GET", "/customer", key=None, headers=bearer),
        401,
        "UNAUTHENTICATED",
        "INVALID_CREDENTIALS",
    )
    # VoIPBin looks for a token first, so the Bearer header wins and fails as a JWT.
    assert_error(
        api(server, "GET", "/customer", headers=bearer),
        401,
        "UNAUTHENTICATED",
        "INVALID_CREDENTIALS",
    )
    ok = api(server, "GET", "/customer")
    assert ok.status_code == 200
    assert ok.json()["id"] == server.config.customer_id
    assert [r["auth"] for r in server.requests()] == ["token", "token", "accesskey"]


def test_requests_are_recorded_without_the_accesskey(server: FakeVoipbinServer) -> None:
    flow = new_flow(server)
    api(server, "GET", "/flows", params={"page_size": "5"})
    api(server, "GET", "/nowhere")
    records = server.requests()
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("POST", "/v1.0/flows", 200),
        ("GET", "/v1.0/flows", 200),
        ("GET", "/v1.0/nowhere", 404),
    ]
    assert records[0]["body"]["name"] == "switchboard"
    assert records[0]["query"] == {}
    assert records[1]["query"] == {"page_size": "5"}
    assert KEY not in json.dumps(records)
    assert server.requests(method="POST", path="/flows")[0]["body"]["actions"][0] == {
        "type": "answer"
    }
    assert flow["name"] == "switchboard"
    over_http = httpx.get(f"{server.base_url}/_fake/requests").json()
    assert [r["path"] for r in over_http] == [r["path"] for r in records]


def test_unknown_path_answers_the_envelope(server: FakeVoipbinServer) -> None:
    assert_error(api(server, "GET", "/webhooks"), 404, "NOT_FOUND", "RESOURCE_NOT_FOUND")
    assert_error(api(server, "PATCH", "/customer", {}), 404, "NOT_FOUND", "RESOURCE_NOT_FOUND")


# -- customer webhook settings -------------------------------------------------------------


def test_customer_webhook_settings_and_secret(server: FakeVoipbinServer) -> None:
    body = {"webhook_uri": "https://sb.example/v1/voipbin/events", "webhook_method": "POST"}
    put = api(server, "PUT", "/customer", body)
    assert put.status_code == 200
    assert put.json()["webhook_uri"] == "https://sb.example/v1/voipbin/events"
    assert "webhook_secret" not in put.json()
    got = api(server, "GET", "/customer").json()
    assert (got["webhook_uri"], got["webhook_method"]) == (body["webhook_uri"], "POST")
    assert got["webhook_secret"] == SECRET
    assert got["name"] == "Fake customer"  # a partial PUT keeps the other fields
    bad = api(server, "PUT", "/customer", {"webhook_method": "PATCH"})
    assert_error(bad, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    server.configure(webhook_secret=None)
    assert api(server, "GET", "/customer").json()["webhook_secret"] == ""


# -- flows and direct hashes -------------------------------------------------------------


def test_flow_direct_hash_is_random_stable_and_dialable(server: FakeVoipbinServer) -> None:
    flow = new_flow(server)
    first = flow["direct_hash"]
    assert HASH_RE.match(first)
    assert flow["id"].replace("-", "")[:12] != first.removeprefix("direct.")
    assert api(server, "GET", f"/flows/{flow['id']}").json()["direct_hash"] == first
    assert api(server, "GET", f"/flows/{flow['id']}").json()["direct_hash"] == first
    other = new_flow(server, "other")
    assert HASH_RE.match(other["direct_hash"]) and other["direct_hash"] != first
    assert sip_uri(first) == f"sip:{first}@sip.voipbin.net"
    call = server.dial(sip_uri(first), "+15557654321")
    assert (call["flow_id"], call["direction"], call["status"]) == (
        flow["id"],
        "incoming",
        "progressing",
    )
    assert call["source"]["type"] == "tel" and call["source"]["target"] == "+15557654321"
    assert call["destination"]["target"] == f"{first}@sip.voipbin.net"


def test_regenerate_replaces_the_hash_and_kills_the_old_one(server: FakeVoipbinServer) -> None:
    flow = new_flow(server)
    old = flow["direct_hash"]
    resp = api(server, "POST", f"/flows/{flow['id']}/direct-hash-regenerate")
    assert resp.status_code == 200
    new = resp.json()["direct_hash"]
    assert HASH_RE.match(new) and new != old
    assert api(server, "GET", f"/flows/{flow['id']}").json()["direct_hash"] == new
    with pytest.raises(ApiError) as refused:
        server.dial(old)
    assert refused.value.status == 404
    assert server.dial(new)["flow_id"] == flow["id"]


def test_empty_direct_hash_needs_a_regenerate(server: FakeVoipbinServer) -> None:
    server.configure(empty_direct_hash=True)
    flow = new_flow(server)
    assert flow["direct_hash"] == ""
    with pytest.raises(ValueError, match="regenerate"):
        sip_uri(flow["direct_hash"])
    fixed = api(server, "POST", f"/flows/{flow['id']}/direct-hash-regenerate").json()
    assert HASH_RE.match(fixed["direct_hash"])
    cleared = server.clear_direct_hash(flow["id"])
    assert cleared["direct_hash"] == ""
    assert api(server, "GET", f"/flows/{flow['id']}").json()["direct_hash"] == ""


def test_flow_actions_are_checked_and_get_ids(server: FakeVoipbinServer) -> None:
    for wrong in ("webhook", "listen", "gather", "say"):
        resp = api(server, "POST", "/flows", {"name": "x", "actions": [{"type": wrong}]})
        assert_error(resp, 400, "INVALID_ARGUMENT", "INVALID_ACTION_TYPE")
    assert api(server, "GET", "/flows").json() == {"result": [], "next_page_token": ""}
    flow = new_flow(server)
    actions = flow["actions"]
    assert [a["type"] for a in actions] == ["answer", "fetch"]
    assert all(uuid.UUID(a["id"]) for a in actions)
    assert actions[1]["option"] == {"event_url": "https://x.example/f", "event_method": "POST"}
    update = {"name": "renamed", "detail": "d", "actions": [TALK]}
    put = api(server, "PUT", f"/flows/{flow['id']}", update).json()
    assert (put["name"], put["actions"][0]["option"]["text"]) == ("renamed", TALK["option"]["text"])
    assert put["direct_hash"] == flow["direct_hash"]  # an update keeps the hash
    assert api(server, "DELETE", f"/flows/{flow['id']}").json()["tm_delete"] is not None
    assert_error(api(server, "GET", f"/flows/{flow['id']}"), 404, "NOT_FOUND", "RESOURCE_NOT_FOUND")
    assert_error(api(server, "GET", "/flows/not-a-uuid"), 400, "INVALID_ARGUMENT", "INVALID_ID")


def test_flow_list_pages_newest_first(server: FakeVoipbinServer) -> None:
    names = ["a", "b", "c"]
    for name in names:
        new_flow(server, name)
    first = api(server, "GET", "/flows", params={"page_size": "2"}).json()
    assert [f["name"] for f in first["result"]] == ["c", "b"]
    second = api(
        server, "GET", "/flows", params={"page_size": "2", "page_token": first["next_page_token"]}
    ).json()
    assert [f["name"] for f in second["result"]] == ["a"]
    third = api(server, "GET", "/flows", params={"page_token": second["next_page_token"]}).json()
    assert third == {"result": [], "next_page_token": ""}


# -- calls, call state and sessions --------------------------------------------------------


def test_outbound_tel_call_comes_back_as_a_groupcall(server: FakeVoipbinServer) -> None:
    flow = new_flow(server)
    body = {
        "source": {"type": "tel", "target": "+15550001111"},
        "destinations": [
            {"type": "tel", "target": "+15550002222"},
            {"type": "sip", "target": flow["direct_hash"] + "@sip.voipbin.net"},
        ],
        "flow_id": flow["id"],
        "variables": {"customer": "42", "voipbin.call.id": "ignored"},
    }
    resp = api(server, "POST", "/calls", body)
    assert resp.status_code == 200
    created = resp.json()
    assert len(created["groupcalls"]) == 1 and len(created["calls"]) == 1
    tel_call_id = created["groupcalls"][0]["call_ids"][0]
    tel_call = api(server, "GET", f"/calls/{tel_call_id}").json()
    assert (tel_call["status"], tel_call["direction"], tel_call["flow_id"]) == (
        "dialing",
        "outgoing",
        flow["id"],
    )
    assert tel_call["destination"]["target"] == "+15550002222"
    assert tel_call["groupcall_id"] == created["groupcalls"][0]["id"]
    assert created["calls"][0]["destination"]["type"] == "sip"
    missing = api(server, "POST", "/calls", {"source": body["source"], "destinations": []})
    assert_error(missing, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    no_plan = {"source": body["source"], "destinations": body["destinations"][:1]}
    assert_error(
        api(server, "POST", "/calls", no_plan), 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"
    )


def test_state_invalid_before_progressing_then_success(server: FakeVoipbinServer) -> None:
    call = server.add_call(status="ringing")
    call_id = call["id"]
    session = {"reference_type": "call", "reference_id": call_id, "language": "en-US"}
    attempts = [
        ("/calls/" + call_id + "/talk", {"text": "hello", "language": "en-US"}),
        ("/speakings", session | {"direction": "out"}),
        ("/transcribes", session | {"direction": "both"}),
    ]
    for path, body in attempts:
        assert_error(api(server, "POST", path, body), 409, "FAILED_PRECONDITION", "STATE_INVALID")
    assert server.speech_log(call_id) == []
    moved = server.set_call_status(call_id, "progressing")
    assert moved["status"] == "progressing" and moved["tm_progressing"] is not None
    statuses = [api(server, "POST", path, body).status_code for path, body in attempts]
    assert statuses == [200, 201, 200]
    assert server.speech_log(call_id)[0]["op"] == "talk"
    assert server.speech_log(call_id)[0]["text"] == "hello"
    transcribe = server.transcribes(call_id)[0]
    assert (transcribe["status"], transcribe["direction"]) == ("progressing", "both")
    assert transcribe["activeflow_id"] == call["activeflow_id"]


def test_call_status_control_endpoint(server: FakeVoipbinServer) -> None:
    call = server.add_call(status="dialing")
    url = f"{server.base_url}/_fake/calls/{call['id']}/status"
    moved = httpx.post(url, json={"status": "progressing"}).json()
    assert moved["status"] == "progressing"
    assert api(server, "GET", f"/calls/{call['id']}").json()["status"] == "progressing"
    wrong = httpx.post(url, json={"status": "flying"})
    assert wrong.status_code == 400


def test_speaking_say_flush_stop_are_recorded_in_order(server: FakeVoipbinServer) -> None:
    call_id = server.add_call()["id"]
    created = api(
        server,
        "POST",
        "/speakings",
        {"reference_type": "call", "reference_id": call_id, "language": "en-US"},
    )
    assert created.status_code == 201
    speaking = created.json()
    assert (speaking["status"], speaking["provider"]) == ("initiating", "elevenlabs")
    sid = speaking["id"]
    assert api(server, "GET", f"/speakings/{sid}").json()["status"] == "active"
    for text in ("Hello there.", "How can I help?"):
        assert api(server, "POST", f"/speakings/{sid}/say", {"text": text}).status_code == 200
    assert api(server, "POST", f"/speakings/{sid}/flush").status_code == 200
    assert api(server, "POST", f"/speakings/{sid}/say", {"text": "Sure."}).status_code == 200
    stopped = api(server, "POST", f"/speakings/{sid}/stop")
    assert stopped.json()["status"] == "stopped"
    log = server.speech_log(call_id)
    assert [(e["op"], e.get("text")) for e in log] == [
        ("say", "Hello there."),
        ("say", "How can I help?"),
        ("flush", None),
        ("say", "Sure."),
        ("stop", None),
    ]
    assert {e["speaking_id"] for e in log} == {sid}
    paths = [r["path"].rsplit("/", 1)[-1] for r in server.requests(path="/speakings/")]
    assert paths == [sid, "say", "say", "flush", "say", "stop"]
    late = api(server, "POST", f"/speakings/{sid}/say", {"text": "too late"})
    assert_error(late, 409, "FAILED_PRECONDITION", "STATE_INVALID")
    empty = api(server, "POST", f"/speakings/{sid}/say", {"text": ""})
    assert_error(empty, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")


def test_hangup_ends_the_call_and_its_sessions(server: FakeVoipbinServer) -> None:
    call_id = server.add_call()["id"]
    session = {"reference_type": "call", "reference_id": call_id, "language": "en-US"}
    sid = api(server, "POST", "/speakings", session).json()["id"]
    tid = api(server, "POST", "/transcribes", session | {"direction": "in"}).json()["id"]
    hung = api(server, "POST", f"/calls/{call_id}/hangup").json()
    assert (hung["status"], hung["hangup_by"], hung["hangup_reason"]) == (
        "hangup",
        "local",
        "normal",
    )
    assert server.speaking(sid)["status"] == "stopped"
    assert api(server, "GET", f"/transcribes/{tid}").json()["status"] == "done"
    again = api(server, "POST", f"/calls/{call_id}/hangup").json()
    assert again["tm_hangup"] == hung["tm_hangup"]
    stop = api(server, "POST", f"/transcribes/{tid}/stop")
    assert stop.status_code == 200 and stop.json()["status"] == "done"
    listed = api(
        server, "GET", "/transcribes", params={"reference_type": "call", "reference_id": call_id}
    ).json()
    assert [t["id"] for t in listed["result"]] == [tid]


# -- failure switches ----------------------------------------------------------------------


def test_fail_next_429_then_success(server: FakeVoipbinServer) -> None:
    server.configure(fail_next=1, fail_status=429, retry_after=2)
    first = api(server, "GET", "/customer")
    assert_error(first, 429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")
    assert first.headers["Retry-After"] == "2"
    second = api(server, "GET", "/customer")
    assert second.status_code == 200 and second.json()["id"] == server.config.customer_id
    server.configure(fail_next=1, fail_status=503)
    assert_error(api(server, "GET", "/customer"), 503, "UNAVAILABLE", "UNAVAILABLE")
    assert api(server, "GET", "/customer").status_code == 200
    assert [r["status"] for r in server.requests()] == [429, 200, 503, 200]


def test_rate_limit_and_latency(server: FakeVoipbinServer) -> None:
    server.configure(rate_limit_per_second=2)
    codes = [api(server, "GET", "/customer").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert "Retry-After" not in api(server, "GET", "/customer").headers
    time.sleep(1.05)
    assert api(server, "GET", "/customer").status_code == 200
    server.configure(rate_limit_per_second=None, latency_ms=150)
    start = time.perf_counter()
    assert api(server, "GET", "/customer").status_code == 200
    assert time.perf_counter() - start >= 0.15


def test_unauthenticated_requests_do_not_consume_failures(server: FakeVoipbinServer) -> None:
    server.configure(fail_next=1)
    assert api(server, "GET", "/customer", key="wrong").status_code == 401
    assert_error(api(server, "GET", "/customer"), 500, "INTERNAL", "INTERNAL")


# -- event emitter -------------------------------------------------------------------------


def test_emitted_event_is_signed_over_the_raw_body(
    server: FakeVoipbinServer, receiver: TinyServer
) -> None:
    server.set_webhook(receiver.url(), "POST")
    call = server.add_call()
    tid = api(
        server,
        "POST",
        "/transcribes",
        {"reference_type": "call", "reference_id": call["id"], "language": "en", "direction": "in"},
    ).json()["id"]
    record = server.emit_transcript(tid, "I <need> help & more", offset_s=8.99)
    assert (record["status_code"], record["attempt"], record["error"]) == (200, 1, None)
    got = receiver.received[0]
    assert (got["method"], got["path"]) == ("POST", "/voipbin/events")
    assert got["headers"]["Content-Type"] == "application/json"
    headers = {name.lower(): value for name, value in got["headers"].items()}
    assert verify(SECRET, got["raw"], headers["x-voipbin-signature"])
    assert not verify("another-secret", got["raw"], headers["x-voipbin-signature"])
    assert b"\\u003cneed\\u003e help \\u0026 more" in got["raw"]  # Go's HTML escaping
    event = json.loads(got["raw"])
    assert event["type"] == "transcript_created"
    data = event["data"]
    assert set(data) == {
        "id",
        "customer_id",
        "transcribe_id",
        "direction",
        "message",
        "tm_transcript",
        "tm_create",
    }
    assert (data["transcribe_id"], data["direction"], data["message"]) == (
        tid,
        "in",
        "I <need> help & more",
    )
    assert data["tm_transcript"] == "0001-01-01 00:00:08.99"
    assert record["body"] == got["raw"].decode()


def test_call_and_speech_events_carry_voipbin_fields(
    server: FakeVoipbinServer, receiver: TinyServer
) -> None:
    server.set_webhook(receiver.url(), "PUT")
    call = server.add_call(status="ringing")
    server.set_call_status(call["id"], "progressing", emit=True)
    call_id = call["id"]
    session = {"reference_type": "call", "reference_id": call_id, "language": "en-US"}
    tid = api(server, "POST", "/transcribes", session | {"direction": "both"}).json()["id"]
    sid = api(server, "POST", "/speakings", session).json()["id"]
    server.emit_speaking(sid)
    server.emit_speech(tid, "started")
    server.emit_speech(tid, "interim", message="wait")
    server.set_call_status(call_id, "hangup", emit=True)
    server.emit_speaking(sid)
    events = [json.loads(r["raw"]) for r in receiver.received]
    assert {r["method"] for r in receiver.received} == {"PUT"}
    assert [e["type"] for e in events] == [
        "call_progressing",
        "speaking_started",
        "transcribe_speech_started",
        "transcribe_speech_interim",
        "call_hangup",
        "speaking_stopped",
    ]
    progressing = events[0]["data"]
    assert (progressing["id"], progressing["status"], progressing["direction"]) == (
        call_id,
        "progressing",
        "incoming",
    )
    assert progressing["activeflow_id"] == call["activeflow_id"]
    speech = events[3]["data"]
    assert (speech["transcribe_id"], speech["message"], speech["direction"]) == (tid, "wait", "in")
    assert speech["streaming_id"] == events[2]["data"]["streaming_id"]
    assert (events[4]["data"]["status"], events[4]["data"]["hangup_by"]) == ("hangup", "remote")
    assert events[5]["data"]["status"] == "stopped"


def test_forged_unsigned_and_retried_deliveries(server: FakeVoipbinServer) -> None:
    flaky = TinyServer([(500, b"boom", 0.0), (503, b"", 0.0), (200, b"ok", 0.0)])
    try:
        server.configure(webhook_retry_delay_ms=10)
        server.set_webhook(flaky.url())
        last = server.emit("call_hangup", {"id": "x"})
        assert (last["attempt"], last["status_code"]) == (3, 200)
        assert [d["status_code"] for d in server.deliveries()] == [500, 503, 200]
        assert len({r["raw"] for r in flaky.received}) == 1  # the same bytes each time
        flaky.replies = [(401, b"", 0.0)]
        forged = server.emit("call_hangup", {"id": "x"}, signature="sha256=" + "0" * 64)
        assert (forged["attempt"], forged["status_code"]) == (1, 401)  # 4xx is not retried
        assert flaky.received[-1]["headers"]["X-Voipbin-Signature"] == "sha256=" + "0" * 64
        server.configure(webhook_secret=None)
        server.emit("call_hangup", {"id": "x"})
        assert "X-Voipbin-Signature" not in flaky.received[-1]["headers"]
    finally:
        flaky.close()


def test_emit_control_endpoint_and_no_webhook(
    server: FakeVoipbinServer, receiver: TinyServer
) -> None:
    missing = httpx.post(f"{server.base_url}/_fake/emit", json={"type": "call_hangup"})
    assert missing.status_code == 422 and "no webhook URI" in missing.text
    server.set_webhook(receiver.url("/hook"))
    data = transcript_data(str(uuid.uuid4()), "hello", direction="out")
    resp = httpx.post(
        f"{server.base_url}/_fake/emit", json={"type": "transcript_created", "data": data}
    )
    assert resp.status_code == 200 and resp.json()["status_code"] == 200
    raw = receiver.received[0]["raw"]
    assert raw == go_json({"type": "transcript_created", "data": data})
    assert verify(SECRET, raw, receiver.received[0]["headers"]["X-Voipbin-Signature"])


# -- fetch driver --------------------------------------------------------------------------


def test_fetch_driver_accepts_a_bare_action_array(server: FakeVoipbinServer) -> None:
    actions = [
        TALK,
        {"type": "digits_receive", "option": {"duration": 5000, "length": 1}},
        {"type": "fetch", "option": {"event_url": "https://b.example/f", "event_method": "POST"}},
    ]
    brain = TinyServer([(200, json.dumps(actions).encode(), 0.0)])
    try:
        call_id, flow_id = str(uuid.uuid4()), str(uuid.uuid4())
        result = server.fetch(brain.url("/fetch/tok"), activeflow_id=flow_id, reference_id=call_id)
        assert result.ok and result.errors == []
        assert (result.status_code, result.actions) == (200, actions)
        assert 0 < result.elapsed_s < 5
        sent = brain.received[0]
        assert (sent["method"], sent["path"]) == ("POST", "/fetch/tok")
        assert sent["headers"]["Content-Type"] == "application/json; charset=utf-8"
        assert json.loads(sent["raw"]) == {"activeflow_id": flow_id, "reference_id": call_id}
        assert not any(h.lower() == "x-voipbin-signature" for h in sent["headers"])
        assert server.fetches()[0]["actions"] == actions
        get = fetch_actions(brain.url("/fetch/tok"), method="get")
        assert get.ok and brain.received[1]["method"] == "GET"
        assert set(json.loads(brain.received[1]["raw"])) == {"activeflow_id", "reference_id"}
    finally:
        brain.close()


def test_fetch_driver_reports_the_wrapped_shape_and_other_faults() -> None:
    wrapped = {"actions": [TALK]}
    brain = TinyServer(
        [
            (200, json.dumps(wrapped).encode(), 0.0),
            (200, json.dumps([{"type": "listen"}]).encode(), 0.0),
            (500, json.dumps([TALK]).encode(), 0.0),
            (200, b"<html>", 0.0),
            (200, b"[]", 0.5),
        ]
    )
    try:
        url = brain.url("/fetch")
        first = fetch_actions(url)
        assert not first.ok and first.actions is None and first.status_code == 200
        assert "bare JSON array" in first.errors[0] and "actions" in first.errors[0]
        unknown = fetch_actions(url)
        assert unknown.errors == ["actions[0] has unknown type 'listen'"]
        failed = fetch_actions(url)
        assert failed.status_code == 500 and failed.actions == [TALK]
        assert failed.errors[0].startswith("HTTP 500")
        not_json = fetch_actions(url)
        assert not_json.errors == ["the body is not JSON: VoIPBin stops the flow"]
        slow = fetch_actions(url, timeout=0.1)
        assert slow.status_code is None and slow.errors[0].startswith("request failed")
        assert 0.05 < slow.elapsed_s < 0.45
    finally:
        brain.close()


def test_validate_action_array_cases() -> None:
    assert validate_action_array([]) == []
    assert validate_action_array([{"type": t} for t in sorted(ACTION_TYPES)]) == []
    assert validate_action_array([{"type": "webhook"}]) == ["actions[0] has unknown type 'webhook'"]
    assert validate_action_array([TALK, {"option": {}}]) == ["actions[1] has no string 'type'"]
    assert validate_action_array([{"type": "talk", "option": "hi"}]) == [
        "actions[0].option is not a JSON object"
    ]
    assert validate_action_array("[]") == ["the body must be a bare JSON array of actions, not str"]


def test_fetch_control_endpoint(server: FakeVoipbinServer) -> None:
    brain = TinyServer([(200, json.dumps([TALK, {"type": "hangup"}]).encode(), 0.0)])
    try:
        resp = httpx.post(f"{server.base_url}/_fake/fetch", json={"url": brain.url(), "timeout": 5})
        body = resp.json()
        assert resp.status_code == 200 and body["ok"] is True
        assert [a["type"] for a in body["actions"]] == ["talk", "hangup"]
        assert server.fetches()[0]["url"] == brain.url()
    finally:
        brain.close()


# -- command line --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_main_serves_and_never_logs_the_accesskey() -> None:
    port = _free_port()
    key = "cli-secret-key-91"
    command = [sys.executable, "-m", "services.channels.voipbin.fake"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--access-key", key],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1.0/customer"
        deadline = time.monotonic() + 15
        while True:
            try:
                resp = httpx.get(url, params={"accesskey": key}, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "fake VoIPBin did not start"
                time.sleep(0.1)
        assert resp.status_code == 200 and resp.json()["webhook_secret"] == DEV_WEBHOOK_SECRET
        assert httpx.get(url, params={"accesskey": DEV_ACCESS_KEY}).status_code == 401
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert key not in output
    assert "accesskey=" not in output
