"""The fake Twilio Messages server, driven over real HTTP (httpx and the official SDK)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from services.channels.sms.fake import (
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    FakeTwilioConfig,
    FakeTwilioServer,
    count_segments,
    create_app,
)

pytestmark = pytest.mark.unit

# Not the defaults, so the tests prove the configured credentials are the ones checked.
ACCOUNT = "AC" + "1" * 32
TOKEN = "unit-test-token"
SERVICE = "MG" + "2" * 32
TO = "+15550001111"
FROM = "+15550002222"
REPO_ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A tiny HTTP server that records the status callbacks it gets and answers 204."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                owner.received.append(
                    {
                        # Rebuilt from the request line, as an ingress would: the raw target.
                        "url": f"http://127.0.0.1:{owner.port}{self.path}",
                        "headers": dict(self.headers),
                        "params": dict(urllib.parse.parse_qsl(body, keep_blank_values=True)),
                    }
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/twilio/status?tenant=a%20b") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeTwilioServer]:
    config = FakeTwilioConfig(account_sid=ACCOUNT, auth_token=SecretStr(TOKEN))
    srv = FakeTwilioServer(config).start()
    yield srv
    srv.stop()
    assert not srv.is_running


@pytest.fixture(autouse=True)
def _fresh(server: FakeTwilioServer) -> None:
    server.reset()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture(autouse=True)
def _fresh_receiver(receiver: Receiver) -> None:
    receiver.received.clear()


def send(
    server: FakeTwilioServer,
    data: dict[str, Any] | list[tuple[str, str]] | None = None,
    *,
    auth: tuple[str, str] | None = (ACCOUNT, TOKEN),
    account: str = ACCOUNT,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST a form to Messages.json; defaults to a valid To/From/Body."""
    if data is None:
        data = {"To": TO, "From": FROM, "Body": "hello"}
    url = f"{server.base_url}/2010-04-01/Accounts/{account}/Messages.json"
    content = urllib.parse.urlencode(data)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return httpx.post(url, content=content, headers=headers, auth=auth, timeout=timeout)


def get(server: FakeTwilioServer, path: str, **params: str) -> httpx.Response:
    url = f"{server.base_url}/2010-04-01/Accounts/{ACCOUNT}/{path}"
    return httpx.get(url, params=params, auth=(ACCOUNT, TOKEN))


def envelope(code: int, status: int, message: str) -> dict[str, Any]:
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    return {"code": code, "message": message, "more_info": more_info, "status": status}


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_defaults_and_routes() -> None:
    config = FakeTwilioConfig()
    assert DEV_ACCOUNT_SID == "AC" + "0" * 32
    assert config.account_sid == DEV_ACCOUNT_SID
    assert config.auth_token.get_secret_value() == DEV_AUTH_TOKEN == "dev-twilio-auth-token"
    assert (config.latency_ms, config.hold_after_accept_ms, config.fail_next) == (0, 0, 0)
    assert (config.fail_status, config.fail_code, config.error_for_numbers) == (500, None, {})
    assert config.rate_limit_per_second is None
    assert config.status_callbacks is True
    assert config.callback_delay_ms == 50
    assert config.callback_final_status == "delivered"
    assert config.callback_error_code is None
    assert DEV_AUTH_TOKEN not in repr(config)
    with pytest.raises(ValidationError):
        FakeTwilioConfig(bogus=1)  # type: ignore[call-arg]
    paths = {getattr(r, "path", None) for r in create_app().routes}
    assert {
        "/2010-04-01/Accounts/{account_sid}/Messages.json",
        "/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        "/_fake/messages",
        "/_fake/attempts",
        "/_fake/callbacks",
        "/_fake/reset",
        "/_fake/config",
    } <= paths


def test_send_returns_the_message_resource(server: FakeTwilioServer) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    resp = send(server, {"To": TO, "From": FROM, "Body": "hello there", "Attempt": "1"})
    assert resp.status_code == 201
    msg = resp.json()
    sid = msg["sid"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", sid)
    assert msg["account_sid"] == ACCOUNT
    assert (msg["to"], msg["from"], msg["messaging_service_sid"]) == (TO, FROM, None)
    assert (msg["body"], msg["status"], msg["num_segments"], msg["num_media"]) == (
        "hello there",
        "queued",
        "1",
        "0",
    )
    assert (msg["direction"], msg["api_version"], msg["price_unit"]) == (
        "outbound-api",
        "2010-04-01",
        "USD",
    )
    for empty in ("date_sent", "error_code", "error_message", "price"):
        assert msg[empty] is None
    assert msg["date_created"].endswith(" GMT")
    created = parsedate_to_datetime(msg["date_created"])
    assert before <= created <= datetime.now(UTC)
    assert msg["date_updated"] == msg["date_created"]
    assert msg["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json"
    media_uri = f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/Media.json"
    assert msg["subresource_uris"] == {"media": media_uri}

    assert server.messages() == [msg | {"status_callback": None}]
    [attempt] = server.attempts()
    assert (attempt["outcome"], attempt["status"], attempt["code"], attempt["sid"]) == (
        "accepted",
        201,
        None,
        sid,
    )
    assert (attempt["to"], attempt["from"], attempt["body"]) == (TO, FROM, "hello there")


def test_messaging_service_and_media(server: FakeTwilioServer) -> None:
    form = [
        ("To", TO),
        ("MessagingServiceSid", SERVICE),
        ("MediaUrl", "https://example.com/a.png"),
        ("MediaUrl", "https://example.com/b.png"),
    ]
    resp = send(server, form)
    assert resp.status_code == 201
    msg = resp.json()
    assert (msg["from"], msg["messaging_service_sid"], msg["status"]) == (None, SERVICE, "accepted")
    assert (msg["num_segments"], msg["num_media"], msg["body"]) == ("0", "2", "")
    assert server.attempts()[0]["media_urls"] == [url for _, url in form[2:]]


def test_the_official_sdk_works_against_it(server: FakeTwilioServer) -> None:
    client = Client(ACCOUNT, TOKEN)
    client.api.base_url = server.base_url
    sent = client.messages.create(to=TO, from_=FROM, body="via sdk")
    assert sent.status == "queued"
    assert client.messages(sent.sid).fetch().body == "via sdk"
    client.messages.create(to="+15550003333", from_=FROM, body="second")
    # page_size=1 makes the SDK follow next_page_uri to get the second message.
    listed = client.messages.list(page_size=1)
    assert [m.body for m in listed] == ["second", "via sdk"]


@pytest.mark.parametrize(
    ("auth", "account"),
    [
        ((ACCOUNT, "wrong-token"), ACCOUNT),
        (("AC" + "9" * 32, TOKEN), ACCOUNT),
        ((ACCOUNT, TOKEN), "AC" + "9" * 32),  # right credentials, another account's path
        (None, ACCOUNT),
    ],
)
def test_bad_auth_is_401_20003(
    server: FakeTwilioServer, auth: tuple[str, str] | None, account: str
) -> None:
    resp = send(server, auth=auth, account=account)
    assert resp.status_code == 401
    assert resp.json() == envelope(20003, 401, "Authenticate")
    assert server.attempts() == []
    assert server.messages() == []


def test_reads_need_auth_too(server: FakeTwilioServer) -> None:
    url = f"{server.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    resp = httpx.get(url, auth=(ACCOUNT, "nope"))
    assert (resp.status_code, resp.json()["code"]) == (401, 20003)


@pytest.mark.parametrize(
    ("form", "code", "message"),
    [
        ({"From": FROM, "Body": "x"}, 21604, "A 'To' phone number is required."),
        ({"To": TO, "Body": "x"}, 21603, "A 'From' phone number is required."),
        ({"To": TO, "From": "", "Body": "x"}, 21603, "A 'From' phone number is required."),
        (
            {"To": TO, "From": FROM, "MessagingServiceSid": SERVICE, "Body": "x"},
            21603,
            "A 'From' phone number is required.",
        ),
        ({"To": TO, "From": FROM}, 21602, "Message body is required."),
        (
            {"To": TO, "From": FROM, "Body": "x" * 1601},
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ),
    ],
)
def test_validation_errors(
    server: FakeTwilioServer, form: dict[str, str], code: int, message: str
) -> None:
    resp = send(server, form)
    assert resp.status_code == 400
    assert resp.json() == envelope(code, 400, message)
    assert server.attempts() == []


def test_body_of_exactly_1600_characters_is_accepted(server: FakeTwilioServer) -> None:
    resp = send(server, {"To": TO, "From": FROM, "Body": "x" * 1600})
    assert resp.status_code == 201
    assert resp.json()["num_segments"] == str(-(-1600 // 153))  # 11


def test_fail_next_429_then_success(server: FakeTwilioServer) -> None:
    server.configure(fail_next=2, fail_status=429)
    statuses = [send(server) for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 201]
    for failed in statuses[:2]:
        assert failed.json() == envelope(20429, 429, "Too Many Requests")
    assert [a["outcome"] for a in server.attempts()] == [
        "injected_failure",
        "injected_failure",
        "accepted",
    ]
    assert len(server.messages()) == 1
    assert server.config.fail_next == 0


def test_fail_next_default_500_and_explicit_code(server: FakeTwilioServer) -> None:
    server.configure(fail_next=1)
    first = send(server)
    assert (first.status_code, first.json()["code"]) == (500, 20500)
    server.configure(fail_next=1, fail_status=503, fail_code=20503)
    second = send(server)
    assert (second.status_code, second.json()["code"]) == (503, 20503)
    assert server.messages() == []


def test_error_for_numbers_persists_until_reset(server: FakeTwilioServer) -> None:
    server.configure(error_for_numbers={TO: 21610})
    for _ in range(2):
        resp = send(server)
        assert resp.status_code == 400
        assert resp.json() == envelope(21610, 400, "Attempt to send to unsubscribed recipient")
    other = send(server, {"To": "+15550009999", "From": FROM, "Body": "hi"})
    assert other.status_code == 201
    assert [m["to"] for m in server.messages()] == ["+15550009999"]
    attempts = server.attempts()
    assert [(a["outcome"], a["code"]) for a in attempts] == [
        ("number_error", 21610),
        ("number_error", 21610),
        ("accepted", None),
    ]
    server.reset()
    assert send(server).status_code == 201


def test_rate_limit(server: FakeTwilioServer) -> None:
    server.configure(rate_limit_per_second=2)
    responses = [send(server) for _ in range(3)]
    assert [r.status_code for r in responses] == [201, 201, 429]
    assert responses[2].headers["retry-after"] == "1"
    assert responses[2].json()["code"] == 20429
    assert server.attempts()[2]["outcome"] == "rate_limited"
    time.sleep(1.05)
    assert send(server).status_code == 201


def test_latency_is_spent_before_recording(server: FakeTwilioServer) -> None:
    server.configure(latency_ms=400)
    result: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: result.append(send(server)))
    started = time.monotonic()
    thread.start()
    time.sleep(0.15)
    assert server.messages() == []  # still waiting: not accepted yet
    thread.join()
    assert time.monotonic() - started >= 0.4
    assert result[0].status_code == 201
    assert len(server.messages()) == 1


def test_hold_after_accept_records_the_message_even_if_the_client_times_out(
    server: FakeTwilioServer,
) -> None:
    server.configure(hold_after_accept_ms=1500)
    with pytest.raises(httpx.ReadTimeout):
        send(server, {"To": TO, "From": FROM, "Body": "lost answer"}, timeout=0.3)
    # The client never learnt the sid, but Twilio accepted (and would send) the message.
    [msg] = server.messages()
    assert (msg["body"], msg["status"]) == ("lost answer", "queued")
    [attempt] = server.attempts()
    assert (attempt["outcome"], attempt["sid"]) == ("accepted", msg["sid"])
    # A client recovering by listing the recipient's messages finds it, while the
    # original request is still held.
    listed = get(server, "Messages.json", To=TO).json()["messages"]
    assert [m["sid"] for m in listed] == [msg["sid"]]


def test_list_filters_by_to_newest_first(server: FakeTwilioServer) -> None:
    bodies = ["one", "two", "three"]
    for body in bodies:
        assert send(server, {"To": TO, "From": FROM, "Body": body}).status_code == 201
    assert send(server, {"To": "+15550004444", "From": FROM, "Body": "other"}).status_code == 201

    page = get(server, "Messages.json", To=TO).json()
    assert [m["body"] for m in page["messages"]] == ["three", "two", "one"]
    assert {m["to"] for m in page["messages"]} == {TO}
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 50, 0, 2)
    assert page["next_page_uri"] is None
    assert page["previous_page_uri"] is None
    base = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json?"
    assert page["uri"] == page["first_page_uri"]
    assert page["uri"].startswith(base)
    assert urllib.parse.parse_qs(page["uri"][len(base) :]) == {
        "To": [TO],
        "PageSize": ["50"],
        "Page": ["0"],
    }

    everything = get(server, "Messages.json").json()["messages"]
    assert [m["body"] for m in everything] == ["other", "three", "two", "one"]
    by_from = get(server, "Messages.json", From=FROM, PageSize="2").json()
    assert [m["body"] for m in by_from["messages"]] == ["other", "three"]
    assert by_from["next_page_uri"] is not None


def test_list_filters_by_date_sent(server: FakeTwilioServer) -> None:
    assert send(server).status_code == 201
    today = datetime.now(UTC).date()
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)

    def count(**params: str) -> int:
        return len(get(server, "Messages.json", **params).json()["messages"])

    assert count(**{"DateSent>=": today.isoformat()}) == 1
    assert count(**{"DateSent>=": tomorrow.isoformat()}) == 0
    assert count(**{"DateSent<=": today.isoformat()}) == 1
    assert count(**{"DateSent<=": yesterday.isoformat()}) == 0
    assert count(DateSent=today.isoformat()) == 1
    # A raw "?DateSent<=YYYY-MM-DD" parses as the key "DateSent<", which is what the SDK sends.
    raw = f"{server.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json?DateSent<={yesterday}"
    assert httpx.get(raw, auth=(ACCOUNT, TOKEN)).json()["messages"] == []
    bad = get(server, "Messages.json", DateSent="not-a-date")
    assert (bad.status_code, bad.json()["code"]) == (400, 20001)


def test_get_by_sid_and_404(server: FakeTwilioServer) -> None:
    sent = send(server).json()
    fetched = get(server, f"Messages/{sent['sid']}.json")
    assert fetched.status_code == 200
    assert fetched.json() == sent
    missing = get(server, "Messages/SM" + "f" * 32 + ".json")
    assert missing.status_code == 404
    assert missing.json()["code"] == 20404
    assert missing.json()["status"] == 404


def test_status_callbacks_are_signed_and_in_order(
    server: FakeTwilioServer, receiver: Receiver
) -> None:
    callback_url = receiver.url()
    form = {"To": TO, "From": FROM, "Body": "track me", "StatusCallback": callback_url}
    sent = send(server, form).json()
    wait_for(lambda: len(receiver.received) == 2)
    validator = RequestValidator(TOKEN)
    for got in receiver.received:
        assert got["url"] == callback_url
        signature = got["headers"]["X-Twilio-Signature"]
        assert validator.validate(got["url"], got["params"], signature)
        assert not RequestValidator("other-token").validate(got["url"], got["params"], signature)
    first, final = (got["params"] for got in receiver.received)
    assert first == {
        "MessageSid": sent["sid"],
        "SmsSid": sent["sid"],
        "MessageStatus": "sent",
        "SmsStatus": "sent",
        "AccountSid": ACCOUNT,
        "From": FROM,
        "To": TO,
        "ApiVersion": "2010-04-01",
    }
    assert (final["MessageStatus"], final["SmsStatus"]) == ("delivered", "delivered")
    assert "ErrorCode" not in final
    done = datetime.strptime(final["RawDlrDoneDate"], "%y%m%d%H%M").replace(tzinfo=UTC)
    assert abs(done - datetime.now(UTC)) < timedelta(minutes=2)

    wait_for(lambda: len(server.callbacks()) == 2)
    recorded = server.callbacks()
    assert [c["params"]["MessageStatus"] for c in recorded] == ["sent", "delivered"]
    assert [(c["status_code"], c["error"]) for c in recorded] == [(204, None), (204, None)]
    assert recorded[0]["url"] == callback_url
    # The stored message followed the lifecycle the callbacks reported.
    stored = get(server, f"Messages/{sent['sid']}.json").json()
    assert stored["status"] == "delivered"
    assert stored["date_sent"] is not None
    assert server.messages()[0]["status_callback"] == callback_url


def test_failed_callback_carries_the_error_code(
    server: FakeTwilioServer, receiver: Receiver
) -> None:
    server.configure(callback_final_status="failed", callback_error_code=30003)
    form = {"To": TO, "From": FROM, "Body": "x", "StatusCallback": receiver.url("/s")}
    sent = send(server, form).json()
    wait_for(lambda: len(receiver.received) == 2)
    final = receiver.received[1]["params"]
    assert (final["MessageStatus"], final["ErrorCode"]) == ("failed", "30003")
    assert "RawDlrDoneDate" not in final  # only on delivered / undelivered
    assert "ErrorCode" not in receiver.received[0]["params"]
    stored = get(server, f"Messages/{sent['sid']}.json").json()
    assert (stored["status"], stored["error_code"]) == ("failed", 30003)


def test_unreachable_callback_is_recorded_and_harmless(server: FakeTwilioServer) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/status"
    server.configure(callback_delay_ms=0)
    send(server, {"To": TO, "From": FROM, "Body": "x", "StatusCallback": dead})
    wait_for(lambda: len(server.callbacks()) == 2)
    for callback in server.callbacks():
        assert callback["status_code"] is None
        assert callback["error"].startswith("ConnectError")
    assert send(server).status_code == 201


def test_status_callbacks_can_be_turned_off(server: FakeTwilioServer, receiver: Receiver) -> None:
    server.configure(status_callbacks=False, callback_delay_ms=0)
    send(server, {"To": TO, "From": FROM, "Body": "x", "StatusCallback": receiver.url()})
    time.sleep(0.3)
    assert receiver.received == []
    assert server.callbacks() == []
    assert server.messages()[0]["status"] == "queued"


def test_reset_restores_the_starting_config_and_clears_records(
    server: FakeTwilioServer, receiver: Receiver
) -> None:
    send(server, {"To": TO, "From": FROM, "Body": "x", "StatusCallback": receiver.url()})
    server.configure(fail_next=3, latency_ms=5, error_for_numbers={TO: 21211})
    assert server.config.fail_next == 3

    resp = httpx.post(f"{server.base_url}/_fake/reset")
    assert resp.status_code == 200
    assert resp.json()["fail_next"] == 0
    assert resp.json()["auth_token"] != TOKEN  # masked
    config = server.config
    assert (config.fail_next, config.latency_ms, config.error_for_numbers) == (0, 0, {})
    # Reset restores the construction-time config, not the class defaults.
    assert config.account_sid == ACCOUNT
    assert config.auth_token.get_secret_value() == TOKEN
    assert server.messages() == server.attempts() == server.callbacks() == []
    time.sleep(0.3)  # callbacks scheduled before the reset are dropped
    assert server.callbacks() == []


def test_config_and_record_controls_over_http(server: FakeTwilioServer) -> None:
    base = server.base_url
    resp = httpx.post(f"{base}/_fake/config", json={"fail_next": 1, "fail_status": 502})
    assert resp.status_code == 200
    assert (resp.json()["fail_next"], resp.json()["fail_status"]) == (1, 502)
    assert TOKEN not in resp.text
    unknown = httpx.post(f"{base}/_fake/config", json={"no_such_switch": True})
    assert unknown.status_code == 422
    assert server.config.fail_next == 1  # the rejected update changed nothing

    assert send(server).status_code == 502
    sent = send(server).json()
    messages = httpx.get(f"{base}/_fake/messages").json()
    assert [m["sid"] for m in messages] == [sent["sid"]]
    assert messages[0]["status_callback"] is None
    attempts = httpx.get(f"{base}/_fake/attempts").json()
    assert [(a["status"], a["code"]) for a in attempts] == [(502, 20500), (201, None)]
    assert httpx.get(f"{base}/_fake/callbacks").json() == []


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" * 80, 1),  # extension characters take two septets
        ("{" * 81, 2),
        ("é" * 160, 1),  # é is in the GSM-7 basic set
        ("ê" * 70, 1),  # ê is not: the whole message is UCS-2
        ("ê" * 71, 2),
        ("“quoted”" + "a" * 62, 1),
        ("😀" * 35, 1),  # outside the BMP: two UCS-2 code units each
        ("😀" * 36, 2),
    ],
)
def test_count_segments(body: str, segments: int) -> None:
    assert count_segments(body) == segments


def test_main_serves_and_never_prints_the_token(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = "cli-secret-token-xyz"
    account = "AC" + "3" * 32
    args = ["--port", str(port), "--account-sid", account, "--auth-token", token]
    log = tmp_path / "out.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.channels.sms.fake", *args],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            url = f"http://127.0.0.1:{port}/2010-04-01/Accounts/{account}/Messages.json"
            form = {"To": TO, "From": FROM, "Body": "cli"}

            def answers() -> bool:
                try:
                    return httpx.post(url, data=form, auth=(account, token)).status_code == 201
                except httpx.TransportError:
                    return False

            wait_for(answers, timeout=20)
            assert httpx.post(url, data=form, auth=(account, DEV_AUTH_TOKEN)).status_code == 401
        finally:
            proc.terminate()
            proc.wait(10)
    output = log.read_text()
    assert "Uvicorn running" in output or "Application startup" in output
    assert token not in output
