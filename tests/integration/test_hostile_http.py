"""Signed or authenticated but hostile requests, against every HTTP route of the real ingress
app (real Kafka and Redis, the fake VoIPBin API behind it), and the field checks behind them
(unit tests at the end; the SMS ones are in tests/unit/test_twilio_signatures.py).

`ROUTES` maps each `(method, path)` to how a request is made for it (signed, with a token)
and to its golden payload; the cases come from `tests/support/hostile.py`, generated from the
golden. `test_every_body_route_has_an_entry` walks `app.routes`, so a new endpoint without an
entry fails here instead of being forgotten. For every case: never a 5xx, a 4xx where the
input is refused (JSON `{"detail": {"error", "message"}}`, never quoting the input), and
no log line with the marker, the customer's number, a secret or a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from structlog.testing import capture_logs

from services.channels.registry import channel_names
from services.channels.sms.twilio import INBOUND_PATH, STATUS_PATH, TwilioSignatures
from services.channels.vapi import auth as vapi_auth
from services.channels.vapi.settings import EVENTS_PATH as VAPI_EVENTS_PATH
from services.channels.vapi.settings import LLM_BASE_PATH as VAPI_LLM_BASE_PATH
from services.channels.vapi.settings import VapiSettings
from services.channels.voipbin.fake import FakeVoipbinServer
from services.channels.voipbin.inbound.payloads import (
    CallData,
    PayloadError,
    SessionData,
    SpeechData,
    parse_envelope,
    parse_fetch,
    validated,
)
from services.channels.voipbin.settings import EVENTS_PATH, FETCH_PATH
from services.channels.voipbin.signature import sign_body
from services.channels.webchat.tokens import TokenSigner, new_session_id
from services.ingress.config import IngressSettings
from services.ingress.identity import InvalidPhoneNumber, is_other_channel_address, normalize_phone
from services.ingress.main import create_app
from tests.support import vapi as vapi_golden
from tests.support.hostile import (
    MARKER,
    Case,
    FormField,
    JsonField,
    dumps,
    encode_form,
    form_cases,
    http_routes,
    json_cases,
    parse_pairs,
    query_cases,
    replaced,
    uncovered_routes,
    walk,
)
from tests.support.infra import Infra

integration = pytest.mark.integration

TWILIO_TOKEN = "hostile-twilio-auth-token-0123456789"
VOIPBIN_SECRET = "hostile-voipbin-secret-0123456789ab"
FETCH_TOKEN = "hostile-fetch-token-" + "f" * 20
CHAT_SECRET = "hostile-chat-token-secret-0123456789abcdef"
SECRETS = (TWILIO_TOKEN, VOIPBIN_SECRET, FETCH_TOKEN, CHAT_SECRET)
PUBLIC = "https://sb.example.org"
PHONE = "+14155550123"
OPTED_OUT_PHONE = "+14155550124"
NUMBERS = (PHONE, PHONE[2:], OPTED_OUT_PHONE, OPTED_OUT_PHONE[2:])
ENDED_CALL = str(uuid.uuid4())


# -- the app and how each route is called ----------------------------------------------------


@dataclass
class Harness:
    """One ingress app with every channel configured, and the means to sign for it."""

    client: TestClient
    signer: TokenSigner
    twilio: TwilioSignatures = field(default_factory=lambda: TwilioSignatures(TWILIO_TOKEN))

    def bearer(self) -> dict[str, str]:
        """A fresh chat session's token (each link request gets its own session)."""
        token, _ = self.signer.issue(new_session_id())
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def settings_for(
    infra: Infra, namespace: str, voipbin_api: str, access_key: str = "unused"
) -> IngressSettings:
    return IngressSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        topic_partitions=1,
        instance_id=f"ingress-{namespace}",
        public_base_url=PUBLIC,
        twilio_auth_token=SecretStr(TWILIO_TOKEN),
        voipbin_api_base=voipbin_api,
        voipbin_access_key=SecretStr(access_key),
        voipbin_webhook_secret=SecretStr(VOIPBIN_SECRET),
        voipbin_fetch_token=SecretStr(FETCH_TOKEN),
        voipbin_fetch_deadline_s=0.5,
        chat_token_secret=SecretStr(CHAT_SECRET),
        link_starts_per_phone=1_000_000,
    )


@pytest.fixture(scope="module")
def harness(infra: Infra) -> Iterator[Harness]:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    with FakeVoipbinServer() as fake, pytest.MonkeyPatch.context() as env:
        # A hostile turn the custom LLM accepts is answered by nobody here: give up fast.
        env.setenv("VAPI_STREAM_DEADLINE_S", "1.5")
        env.setenv("VAPI_FILLER_AFTER_MS", "200")
        settings = settings_for(infra, namespace, fake.api_base, fake.access_key)
        # A 500 must come back as a response the test can judge, not as an exception.
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            harness = Harness(client, TokenSigner(CHAT_SECRET.encode(), 3600))
            # The fetch golden names a call that has ended: answered at once with a hangup.
            ended = voipbin_event(harness, "POST", dumps(event("call_hangup", ENDED_CALL)))
            assert ended.status_code == 200, ended.text
            yield harness


def voipbin_event(h: Harness, method: str, body: bytes) -> Any:
    headers = {
        "Content-Type": "application/json",
        "X-Voipbin-Signature": sign_body(VOIPBIN_SECRET, body),
    }
    return h.client.request(method, EVENTS_PATH, content=body, headers=headers)


def voipbin_fetch(h: Harness, method: str, body: bytes, query: str = "") -> Any:
    url = f"{FETCH_PATH}/{FETCH_TOKEN}" + (f"?{query}" if query else "")
    return h.client.request(method, url, content=body, headers={"Content-Type": "application/json"})


def twilio_form(path: str) -> Callable[[Harness, str, bytes], Any]:
    def send(h: Harness, method: str, body: bytes) -> Any:
        try:
            signature = h.twilio.sign(f"{PUBLIC}{path}", parse_pairs(body))
        except UnicodeDecodeError:
            signature = "not-computable-for-invalid-utf8"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        return h.client.request(method, path, content=body, headers=headers)

    return send


def with_bearer(path: str) -> Callable[[Harness, str, bytes], Any]:
    def send(h: Harness, method: str, body: bytes) -> Any:
        return h.client.request(method, path, content=body, headers=h.bearer())

    return send


def plain(path: str) -> Callable[[Harness, str, bytes], Any]:
    def send(h: Harness, method: str, body: bytes) -> Any:
        return h.client.request(method, path, content=body)

    return send


# -- golden payloads ------------------------------------------------------------------------


def address(target: str) -> dict[str, Any]:
    kind = "tel" if target.startswith("+") else "sip"
    return {"type": kind, "target": target, "target_name": "", "name": "", "detail": ""}


def call_data(call_id: str, status: str) -> dict[str, Any]:
    """A call's `data` as VoIPBin's call-manager writes it (providers.md §1.5)."""
    nil = "00000000-0000-0000-0000-000000000000"
    return {
        "id": call_id,
        "customer_id": str(uuid.uuid4()),
        "owner_type": "",
        "owner_id": nil,
        "flow_id": str(uuid.uuid4()),
        "activeflow_id": str(uuid.uuid4()),
        "type": "flow",
        "master_call_id": nil,
        "chained_call_ids": [str(uuid.uuid4())],
        "recording_id": nil,
        "recording_ids": [],
        "groupcall_id": nil,
        "source": address(PHONE),
        "destination": address("+15005550006"),
        "status": status,
        "action": {"id": nil, "next_id": nil, "type": "fetch", "option": {"event_url": PUBLIC}},
        "metadata": {"k": "v"},
        "direction": "incoming",
        "mute_direction": "",
        "hangup_by": "",
        "hangup_reason": "",
        "tm_progressing": "2026-08-20 10:00:01.000000",
        "tm_ringing": None,
        "tm_hangup": None,
        "tm_create": "2026-08-20 10:00:00.000000",
        "tm_update": "2026-08-20 10:00:01.000000",
        "tm_delete": None,
    }


def event(event_type: str, call_id: str | None = None) -> dict[str, Any]:
    """A golden event of `event_type`, with fresh ids."""
    new = str(uuid.uuid4())
    data: dict[str, Any]
    if event_type.startswith("call_"):
        data = call_data(call_id or new, event_type.removeprefix("call_"))
    elif event_type == "transcript_created":
        data = {
            "id": new,
            "customer_id": str(uuid.uuid4()),
            "transcribe_id": str(uuid.uuid4()),
            "direction": "in",
            "message": f"{MARKER} my number is {PHONE}",
            "tm_transcript": "0001-01-01 00:00:08.99",
            "tm_create": "2026-08-20 10:00:09.000000",
        }
    elif event_type.startswith("transcribe_speech"):
        data = {
            "id": new,
            "streaming_id": str(uuid.uuid4()),
            "transcribe_id": str(uuid.uuid4()),
            "direction": "in",
            "message": f"{MARKER} wait",
            "tm_event": "2026-08-20 10:00:09.000000",
            "tm_create": "2026-08-20 10:00:09.000000",
        }
    else:  # transcribe_* and speaking_*: sessions on a call
        data = {
            "id": new,
            "customer_id": str(uuid.uuid4()),
            "reference_type": "call",
            "reference_id": str(uuid.uuid4()),
            "status": "progressing",
            "language": "en-US",
            "tm_create": "2026-08-20 10:00:02.000000",
            "tm_update": "2026-08-20 10:00:02.000000",
        }
    return {"type": event_type, "data": data}


ENVELOPE = {("type",): JsonField("str", required=True), ("data",): JsonField("object", True)}
DEDUPE = {("data", "status"): JsonField("str"), ("data", "tm_update"): JsonField("str")}
CALL_FIELDS = {
    **ENVELOPE,
    **DEDUPE,
    ("data", "id"): JsonField("id", required=True),
    ("data", "direction"): JsonField("str"),
    ("data", "source"): JsonField("object"),
    ("data", "source", "target"): JsonField("str"),
    ("data", "destination"): JsonField("object"),
    ("data", "destination", "target"): JsonField("str"),
}
SPEECH_FIELDS = {
    **ENVELOPE,
    **DEDUPE,
    ("data", "id"): JsonField("id", required=True),
    ("data", "transcribe_id"): JsonField("id", required=True),
    ("data", "direction"): JsonField("str"),
    ("data", "message"): JsonField("str"),
}
SESSION_FIELDS = {
    **ENVELOPE,
    **DEDUPE,
    ("data", "id"): JsonField("id", required=True),
    ("data", "reference_type"): JsonField("str"),
    ("data", "reference_id"): JsonField("id"),
}
EVENT_SHAPES: dict[str, dict[tuple[str | int, ...], JsonField]] = {
    "call_progressing": CALL_FIELDS,
    "call_hangup": CALL_FIELDS,
    "transcript_created": SPEECH_FIELDS,
    "transcribe_speech_started": SPEECH_FIELDS,
    "transcribe_created": SESSION_FIELDS,
    "speaking_started": SESSION_FIELDS,
}


def event_cases() -> Iterator[Case]:
    for event_type, fields in EVENT_SHAPES.items():
        yield from json_cases(functools.partial(event, event_type), fields, event_type)


def sms_inbound_golden() -> list[tuple[str, str]]:
    sid = "SM" + uuid.uuid4().hex
    return [
        ("MessageSid", sid),
        ("SmsMessageSid", sid),
        ("AccountSid", "AC" + "1" * 32),
        ("From", PHONE),
        ("To", "+15005550006"),
        ("Body", f"{MARKER} where is my order?"),
        ("NumMedia", "1"),
        ("MediaUrl0", "https://api.twilio.com/m/1"),
        ("NumSegments", "1"),
        ("ApiVersion", "2010-04-01"),
    ]


SMS_INBOUND_FIELDS = {
    # Either sid will do (`SmsMessageSid` is Twilio's older name): neither is required alone.
    "MessageSid": FormField("sid"),
    "SmsMessageSid": FormField("sid"),
    "From": FormField("phone", required=True),
    "NumMedia": FormField("count"),
    "Body": FormField("text"),
}


def sms_status_golden(opt_out: bool = False) -> list[tuple[str, str]]:
    pairs = [
        ("MessageSid", "SM" + uuid.uuid4().hex),
        ("MessageStatus", "undelivered" if opt_out else "delivered"),
        ("AccountSid", "AC" + "1" * 32),
        ("From", "+15005550006"),
        ("To", OPTED_OUT_PHONE if opt_out else PHONE),
        ("ApiVersion", "2010-04-01"),
    ]
    return [*pairs, ("ErrorCode", "21610")] if opt_out else pairs


SMS_STATUS_FIELDS = {
    "MessageSid": FormField("sid", required=True),
    "MessageStatus": FormField("text", required=True),
    "ErrorCode": FormField("code"),
}
# With ErrorCode 21610 the callback opts `To` out: then it is read, as a phone number.
SMS_OPT_OUT_FIELDS = {**SMS_STATUS_FIELDS, "To": FormField("phone", required=True)}


def sms_status_cases() -> Iterator[Case]:
    yield from form_cases(sms_status_golden(), SMS_STATUS_FIELDS, "status")
    yield from form_cases(sms_status_golden(opt_out=True), SMS_OPT_OUT_FIELDS, "opt_out")


FETCH_GOLDEN = {"activeflow_id": str(uuid.uuid4()), "reference_id": ENDED_CALL}
FETCH_FIELDS = {("reference_id",): JsonField("id")}
FETCH_QUERY = {"n": "2", "digits": "1", "reference_id": ENDED_CALL}


def fetch_cases() -> Iterator[Case]:
    yield from json_cases(FETCH_GOLDEN, FETCH_FIELDS, "fetch")


# -- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """How to call one route, its golden request and the hostile cases made from it."""

    send: Callable[[Harness, str, bytes], Any]
    golden: Callable[[], bytes]
    golden_status: int
    cases: Callable[[], Iterable[Case]]
    reads_body: bool = True
    """False: the route ignores its body, so nothing in it may be refused (or crash it)."""
    openai_errors: bool = False
    """The route speaks OpenAI's wire format (the VAPI custom LLM): its 4xx carry OpenAI's
    error envelope `{"error": {"message", "type", "code"}}`, which its clients expect."""


EVENTS_ROUTE = Route(
    send=voipbin_event,
    golden=lambda: dumps(event("call_progressing")),
    golden_status=200,
    cases=event_cases,
)
FETCH_ROUTE = Route(
    send=voipbin_fetch,
    golden=lambda: dumps(FETCH_GOLDEN),
    golden_status=200,
    cases=fetch_cases,
)

ROUTES: dict[tuple[str, str], Route] = {
    ("POST", INBOUND_PATH): Route(
        send=twilio_form(INBOUND_PATH),
        golden=lambda: encode_form(sms_inbound_golden()),
        golden_status=200,
        cases=lambda: form_cases(sms_inbound_golden(), SMS_INBOUND_FIELDS, "inbound"),
    ),
    ("POST", STATUS_PATH): Route(
        send=twilio_form(STATUS_PATH),
        golden=lambda: encode_form(sms_status_golden()),
        golden_status=204,
        cases=sms_status_cases,
    ),
    ("POST", EVENTS_PATH): EVENTS_ROUTE,
    ("PUT", EVENTS_PATH): EVENTS_ROUTE,
    ("POST", FETCH_PATH + "/{token}"): FETCH_ROUTE,
    ("GET", FETCH_PATH + "/{token}"): FETCH_ROUTE,
    ("POST", "/v1/identity/link"): Route(
        send=with_bearer("/v1/identity/link"),
        golden=lambda: dumps({"phone": "+1 (415) 555-0123"}),
        golden_status=202,
        cases=lambda: json_cases(
            {"phone": "+1 (415) 555-0123"}, {("phone",): JsonField("format", True)}, "link"
        ),
    ),
    ("POST", "/v1/identity/link/verify"): Route(
        send=with_bearer("/v1/identity/link/verify"),
        golden=lambda: dumps({"code": "123 456"}),
        golden_status=410,  # well formed, but no link was started: `no_pending_link`
        cases=lambda: json_cases(
            {"code": "123 456"}, {("code",): JsonField("format", True)}, "verify"
        ),
    ),
    ("POST", "/v1/chat/sessions"): Route(
        send=plain("/v1/chat/sessions"),
        golden=lambda: b"",
        golden_status=201,
        cases=lambda: json_cases({"client": "web"}, {}, "sessions"),
        reads_body=False,
    ),
}


def vapi_event(h: Harness, method: str, body: bytes) -> Any:
    """Authenticated as the VAPI channel reads its settings (`VAPI_*`, dev defaults here)."""
    headers = {"Content-Type": "application/json", **vapi_auth.sign(VapiSettings(), body)}
    return h.client.request(method, VAPI_EVENTS_PATH, content=body, headers=headers)


def vapi_report() -> dict[str, Any]:
    return vapi_golden.end_of_call_report(vapi_golden.call())


def vapi_llm(path: str) -> Callable[[Harness, str, bytes], Any]:
    """The custom LLM, authenticated with the `custom-llm` credential's key."""
    key = VapiSettings().llm_key.get_secret_value()

    def send(h: Harness, method: str, body: bytes) -> Any:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        return h.client.request(method, path, content=body, headers=headers)

    return send


def vapi_llm_golden() -> dict[str, Any]:
    # Blank: a well-formed turn with nothing to answer streams `[DONE]` at once, so the
    # golden and every accepted variant are judged without waiting for an answer.
    return {
        "model": "switchboard",
        "stream": True,
        "call": {"id": str(uuid.uuid4()), "customer": {"number": PHONE}},
        "messages": [{"role": "user", "content": " "}],
    }


VAPI_LLM_FIELDS = {
    ("call",): JsonField("object", required=True),
    ("call", "id"): JsonField("id", required=True),
    ("messages",): JsonField("format", required=True),
}

# The VAPI routes exist once the channel is in the registry; until then an entry for them
# would be a stale one.
if "vapi" in channel_names():
    ROUTES[("POST", VAPI_EVENTS_PATH)] = Route(
        send=vapi_event,
        golden=lambda: dumps(vapi_report()),
        golden_status=200,
        cases=lambda: json_cases(vapi_report, vapi_golden.ENVELOPE_FIELDS, "vapi"),
    )
    for llm_path in (
        f"{VAPI_LLM_BASE_PATH}/chat/completions",
        f"{VAPI_LLM_BASE_PATH}/chat/completions/chat/completions",
    ):
        ROUTES[("POST", llm_path)] = Route(
            send=vapi_llm(llm_path),
            golden=lambda: dumps(vapi_llm_golden()),
            golden_status=200,
            cases=lambda: json_cases(vapi_llm_golden, VAPI_LLM_FIELDS, "vapi_llm"),
            openai_errors=True,
        )


# -- checks ---------------------------------------------------------------------------------


class Logs:
    """Everything logged or printed since the fixture started: structlog entries, stdlib
    records, and stdout/stderr (a logger configured to print lands there)."""

    def __init__(
        self,
        structured: list[Any],
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self._structured = structured
        self._caplog = caplog
        self._capsys = capsys
        self._printed = ""

    def text(self) -> str:
        out, err = self._capsys.readouterr()  # empties the capture: keep what it had
        self._printed += out + err
        return "\n".join([repr(self._structured), self._caplog.text, self._printed])

    def assert_clean(self) -> None:
        """No line quotes the hostile marker, a customer number, a secret, or a traceback."""
        text = self.text()
        leaks = [s for s in (MARKER, *NUMBERS, *SECRETS, "Traceback") if s in text]
        assert not leaks, f"logs quote {leaks}"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Logs]:
    """The logs of one test, at the levels production logs at (`shared.logs`): INFO, and
    WARNING for libraries that log every request (httpx: the test client's own requests,
    whose URLs carry the fetch token) or payloads at DEBUG (aiokafka)."""
    caplog.set_level(logging.INFO)
    for library in ("aiokafka", "faststream", "httpx", "httpx2", "httpcore", "httpcore2"):
        caplog.set_level(logging.WARNING, logger=library)
    with capture_logs() as structured:
        yield Logs(structured, caplog, capsys)


def judge(
    case: Case, response: Any, reads_body: bool = True, openai_errors: bool = False
) -> str | None:
    """What is wrong with the answer to `case`, or None."""
    status = response.status_code
    if status >= 500:
        return f"{case.name}: {status} {response.text[:160]!r}"
    if case.must_refuse and reads_body and not 400 <= status < 500:
        return f"{case.name}: expected a 4xx, got {status} {response.text[:160]!r}"
    if 400 <= status < 500:
        return error_shape_problem(case.name, response, openai_errors)
    return None


def error_shape_problem(name: str, response: Any, openai: bool = False) -> str | None:
    """What is wrong with the body of a 4xx: ours is `{"detail": {"error": code,
    "message"}}`, OpenAI's (the custom LLM) `{"error": {"code", "message", "type"}}`."""
    envelope, code_key = ("error", "code") if openai else ("detail", "error")
    try:
        detail = response.json()[envelope]
    except (ValueError, KeyError, TypeError):
        return f"{name}: {response.status_code} without a JSON {envelope}: {response.text[:160]!r}"
    if not (isinstance(detail, dict) and str(detail.get(code_key, "")).isidentifier()):
        return f"{name}: {response.status_code} {envelope} has no error code: {detail!r:.160}"
    if not isinstance(detail.get("message"), str):
        return f"{name}: {response.status_code} {envelope} has no message: {detail!r:.160}"
    if MARKER in response.text:
        return f"{name}: the error quotes the input: {response.text[:160]!r}"
    return None


def run_cases(h: Harness, method: str, route: Route, cases: Iterable[Case]) -> list[str]:
    problems = []
    for case in cases:
        response = route.send(h, method, case.body)
        problem = judge(case, response, route.reads_body, route.openai_errors)
        if problem:
            problems.append(problem)
    return problems


def report(problems: list[str]) -> str:
    return f"{len(problems)} problems:\n" + "\n".join(problems[:40])


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.unit
def test_every_body_route_has_an_entry() -> None:
    app = create_app(IngressSettings())  # routes only: nothing is connected before the lifespan
    assert uncovered_routes(app, ROUTES) == []
    # The walk must see the routes at all (it descends into included routers), and an entry
    # whose route was renamed or removed is as wrong as a missing one.
    stale = sorted(set(ROUTES) - http_routes(app, {"GET", "POST", "PUT"}))
    assert not stale, f"entries for routes that no longer exist: {stale}"


@pytest.mark.unit
def test_the_coverage_check_sees_a_new_route() -> None:
    app = FastAPI()

    @app.post("/v1/new/webhook")
    async def new_webhook() -> None: ...

    @app.get("/v1/read-only")
    async def read_only() -> None: ...

    assert uncovered_routes(app, {}) == [("POST", "/v1/new/webhook")]
    assert uncovered_routes(app, {("POST", "/v1/new/webhook")}) == []


@integration
@pytest.mark.parametrize("key", list(ROUTES), ids=lambda key: f"{key[0]} {key[1]}")
def test_hostile_bodies_are_refused_never_a_5xx(
    harness: Harness, key: tuple[str, str], logs: Logs
) -> None:
    method, _ = key
    route = ROUTES[key]
    golden = route.send(harness, method, route.golden())
    assert golden.status_code == route.golden_status, golden.text
    problems = run_cases(harness, method, route, route.cases())
    assert not problems, report(problems)
    logs.assert_clean()


@integration
@pytest.mark.parametrize("key", list(ROUTES), ids=lambda key: f"{key[0]} {key[1]}")
def test_an_oversized_body_is_refused_with_413_before_any_handler(
    harness: Harness, key: tuple[str, str], logs: Logs
) -> None:
    method, _ = key
    response = ROUTES[key].send(harness, method, b"x" * (300 * 1024))
    assert response.status_code == 413, response.text
    logs.assert_clean()


@integration
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_hostile_fetch_queries_are_never_a_5xx(harness: Harness, method: str, logs: Logs) -> None:
    fields = {"reference_id": FormField("sid")}
    problems = []
    for case in query_cases(FETCH_QUERY, fields):
        response = voipbin_fetch(harness, method, b"", case.body.decode())
        problem = judge(case, response)
        if problem:
            problems.append(problem)
        elif response.status_code == 200:
            assert isinstance(response.json(), list), case.name
    assert not problems, report(problems)
    logs.assert_clean()


@integration
@pytest.mark.parametrize("path", ["/v1/identity/link", "/v1/identity/link/verify"])
def test_hostile_bearer_tokens_get_401(harness: Harness, path: str, logs: Logs) -> None:
    session = new_session_id()
    tokens = [
        MARKER,
        MARKER * 10_000,
        f"v1.{session}.{MARKER}.x",
        f"v1.{session}.\u00b2." + "A" * 43,
        f"v1.{session}.{'9' * 5000}.sig",
        f"v1.{MARKER}.1.{'A' * 43}",
    ]
    problems = []
    for token in tokens:
        header = f"Bearer {token}".encode()
        response = harness.client.post(path, content=b"{}", headers=[(b"Authorization", header)])
        if response.status_code != 401:
            problems.append(f"{token[:40]!r}: {response.status_code} {response.text[:160]!r}")
        elif problem := error_shape_problem(token[:40], response):
            problems.append(problem)
    raw = harness.client.post(path, content=b"{}", headers=[(b"Authorization", b"Bearer \xff\xfe")])
    assert raw.status_code == 401
    assert not problems, report(problems)
    logs.assert_clean()


@integration
def test_a_whatsapp_sender_gets_400_and_is_never_answered_by_sms(
    harness: Harness, logs: Logs
) -> None:
    pairs = [(k, "whatsapp:" + PHONE if k == "From" else v) for k, v in sms_inbound_golden()]
    response = twilio_form(INBOUND_PATH)(harness, "POST", encode_form(pairs))
    assert response.status_code == 400
    assert response.json()["detail"]["error"] == "unsupported_address"
    # HELP is answered inline: that must not happen on another channel either.
    pairs = [(k, "HELP" if k == "Body" else v) for k, v in pairs]
    response = twilio_form(INBOUND_PATH)(harness, "POST", encode_form(pairs))
    assert response.status_code == 400
    assert "<Message>" not in response.text
    logs.assert_clean()


@integration
def test_a_whatsapp_address_cannot_be_linked(harness: Harness) -> None:
    for phone in ("whatsapp:" + PHONE, "messenger:1234567890", "sip:alice@example.org"):
        response = harness.client.post(
            "/v1/identity/link", content=dumps({"phone": phone}), headers=harness.bearer()
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"]["error"] == "invalid_phone"


# -- generated by hypothesis --------------------------------------------------------------

HOSTILE_TEXT = st.text(st.characters(categories=["Cs", "L", "N", "P", "S", "Zs", "Cc"]))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(HOSTILE_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
CALL_GOLDEN = event("call_progressing")
CALL_PATHS = [path for path, _ in walk(CALL_GOLDEN)]


@integration
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(CALL_PATHS), value=JSON_VALUES)
def test_any_json_value_anywhere_in_an_event_is_never_a_5xx(
    harness: Harness, path: tuple[str | int, ...], value: Any
) -> None:
    body = json.dumps(replaced(CALL_GOLDEN, path, value)).encode()
    response = voipbin_event(harness, "POST", body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert error_shape_problem("event", response) is None


@integration
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.sampled_from([k for k, _ in sms_inbound_golden()]), value=HOSTILE_TEXT)
def test_any_text_in_any_sms_field_is_never_a_5xx(harness: Harness, name: str, value: str) -> None:
    pairs = [(k, value if k == name else v) for k, v in sms_inbound_golden()]
    body = urlencode(pairs, errors="surrogatepass").encode()
    response = twilio_form(INBOUND_PATH)(harness, "POST", body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert error_shape_problem("sms", response) is None


# -- the field checks, without the app (unit) -------------------------------------------------

unit = pytest.mark.unit


def payload_error(call: Callable[[], Any]) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        call()
    return caught.value


@unit
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 5000 + b"]" * 5000, "too_deep"),
        (b'{"type": "call_hangup", "data": {"id": "\\ud800"}}', "bad_unicode"),
        (b'{"type": "call_hangup", "data": {"id": ' + b"9" * 5000 + b"}}", "number_too_long"),
        (b'{"type": "call_hangup", "data": {"id": 1e999}}', "bad_number"),
        (b"\xff\xfe", "bad_encoding"),
        (b"[]", "not_an_object"),
        (b'{"type": 1, "data": {}}', "invalid_field"),
        (b'{"type": "call_hangup", "data": "x"}', "invalid_field"),
    ],
)
def test_envelopes_that_are_refused(body: bytes, code: str) -> None:
    assert payload_error(lambda: parse_envelope(body)).code == code


@unit
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source", MARKER),
        ("source", [MARKER]),
        ("source", 5),
        ("id", 12345),
        ("id", "a" * 65),
        ("id", MARKER + "\ud800"),
        ("id", MARKER + " text"),
        ("status", MARKER * 10),
        ("direction", ["in"]),
    ],
)
def test_call_fields_of_the_wrong_type_or_size_are_refused(field: str, value: Any) -> None:
    data = {**call_data(str(uuid.uuid4()), "progressing"), field: value}
    error = payload_error(lambda: validated(CallData, data, "data"))
    assert (error.code, error.field) == ("invalid_field", f"data.{field}")
    assert MARKER not in error.message and MARKER not in json.dumps(error.detail())


@unit
def test_speech_must_be_well_formed_but_may_be_long() -> None:
    data = event("transcript_created")["data"]
    long = validated(SpeechData, {**data, "message": "word " * 10_000}, "data")
    assert long.message and len(long.message) == 50_000  # the handler truncates it
    error = payload_error(lambda: validated(SpeechData, {**data, "message": "\udfff"}, "data"))
    assert error.field == "data.message"
    missing = {k: v for k, v in data.items() if k != "transcribe_id"}
    assert payload_error(lambda: validated(SpeechData, missing, "data")).code == "missing_field"


@unit
def test_the_customer_is_the_source_or_for_outgoing_calls_the_destination() -> None:
    data = call_data(str(uuid.uuid4()), "progressing")
    assert validated(CallData, data, "data").customer == PHONE
    outgoing = {**data, "direction": "outgoing"}
    assert validated(CallData, outgoing, "data").customer == "+15005550006"
    assert validated(CallData, {**data, "source": None}, "data").customer == ""
    assert validated(CallData, {**data, "source": {}}, "data").customer == ""


@unit
def test_fetch_requests_come_from_the_body_or_else_the_query() -> None:
    call_id = str(uuid.uuid4())
    body = json.dumps({"reference_id": call_id}).encode()
    assert parse_fetch(body, {}).reference_id == call_id
    assert parse_fetch(b"  ", {"reference_id": call_id}).reference_id == call_id
    assert parse_fetch(b"", {}).reference_id is None
    assert parse_fetch(b'{"reference_id": ""}', {}).reference_id == ""
    assert payload_error(lambda: parse_fetch(b"null", {})).code == "not_an_object"
    error = payload_error(lambda: parse_fetch(b'{"reference_id": 7}', {}))
    assert error.field == "body.reference_id"
    error = payload_error(lambda: parse_fetch(b"", {"reference_id": "x" * 100}))
    assert error.field == "query.reference_id"


@unit
@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES, model=st.sampled_from([CallData, SpeechData, SessionData]))
def test_any_json_value_as_data_validates_or_is_a_payload_error(value: Any, model: Any) -> None:
    try:
        validated(model, value, "data")
    except PayloadError as error:
        assert error.code in ("invalid_field", "missing_field")


@unit
@pytest.mark.parametrize(
    ("address", "other"),
    [
        ("whatsapp:+14155550123", True),
        (" WhatsApp:+14155550123", True),
        ("messenger:1234", True),
        ("sip:alice@example.org", True),
        ("tel:+1-415-555-0123", False),
        ("+1 (415) 555-0123", False),
        ("415.555.0123", False),
    ],
)
def test_addresses_of_other_channels_are_not_phone_numbers(address: str, other: bool) -> None:
    assert is_other_channel_address(address) is other
    if other:
        with pytest.raises(InvalidPhoneNumber, match="another channel"):
            normalize_phone(address, "US", require_valid=False)
    else:
        assert normalize_phone(address, "US") == PHONE
