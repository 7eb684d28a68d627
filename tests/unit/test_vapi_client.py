"""The VAPI REST client against the fake VAPI: Bearer key, retries, errors without the key."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from services.channels.vapi.client import VapiClient, VapiError, VapiUnreachable
from services.channels.vapi.fake import DEV_PHONE_NUMBER_ID, FakeVapiConfig, FakeVapiServer
from services.channels.vapi.settings import VapiSettings
from services.common.backoff import RetryPolicy

pytestmark = pytest.mark.unit

KEY = "client-test-private-key-9c2e"
FAST = RetryPolicy(max_attempts=3, base_s=0.01, cap_s=0.05, budget_s=10.0)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeVapiServer]:
    with FakeVapiServer(FakeVapiConfig(private_key=SecretStr(KEY))) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: FakeVapiServer) -> None:
    server.reset()


def client(base: str, key: str = KEY, retry: RetryPolicy = FAST) -> VapiClient:
    settings = VapiSettings.model_validate({"api_base": base, "api_key": key})
    return VapiClient(settings, retry=retry)


def test_a_key_is_required() -> None:
    with pytest.raises(ValueError, match="VAPI_API_KEY"):
        VapiClient(VapiSettings.model_validate({"api_base": "http://x"}))


@pytest.mark.asyncio
async def test_bearer_key_and_a_round_trip(server: FakeVapiServer) -> None:
    vapi = client(server.base_url)
    try:
        created = await vapi.create_assistant({"name": "a"})
        assert (await vapi.get_assistant(created["id"]))["name"] == "a"
        assert [a["id"] for a in await vapi.list_assistants()] == [created["id"]]
        number = await vapi.update_phone_number(DEV_PHONE_NUMBER_ID, {"name": "main"})
        assert number["name"] == "main"
    finally:
        await vapi.aclose()
    assert {r["auth"] for r in server.requests()} == {"private"}


@pytest.mark.asyncio
async def test_429_is_retried_after_retry_after_even_for_post(server: FakeVapiServer) -> None:
    server.configure(fail_next=1, fail_status=429, retry_after=1)
    vapi = client(server.base_url)
    started = time.monotonic()
    try:
        await vapi.create_credential({"provider": "custom-llm", "apiKey": "k"})
    finally:
        await vapi.aclose()
    assert time.monotonic() - started >= 1.0, "never sooner than Retry-After"
    assert [r["status"] for r in server.requests()] == [429, 201]


@pytest.mark.asyncio
async def test_5xx_is_retried_for_reads_but_not_for_a_post(server: FakeVapiServer) -> None:
    vapi = client(server.base_url)
    try:
        server.configure(fail_next=2, fail_status=503)
        assert await vapi.list_phone_numbers()
        assert [r["status"] for r in server.requests()] == [503, 503, 200]
        server.configure(fail_next=1, fail_status=500)
        with pytest.raises(VapiError) as caught:
            await vapi.create_assistant({"name": "once"})
        assert caught.value.status == 500 and caught.value.retryable
    finally:
        await vapi.aclose()
    posts = [r for r in server.requests() if r["method"] == "POST"]
    assert len(posts) == 1, "a POST VAPI may have carried out is not repeated"


@pytest.mark.asyncio
async def test_errors_carry_vapi_messages_and_never_the_key(
    server: FakeVapiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = client(server.base_url, key="wrong-" + KEY)
    try:
        with pytest.raises(VapiError) as refused:
            await wrong.list_assistants()
    finally:
        await wrong.aclose()
    assert refused.value.status == 401 and "Invalid Key" in refused.value.message
    vapi = client(server.base_url)
    try:
        with pytest.raises(VapiError) as invalid:
            await vapi.create_assistant({"nmae": "typo"})
        assert invalid.value.status == 400 and "nmae" in invalid.value.message
        server.configure(fail_next=5, fail_status=503)
        with pytest.raises(VapiError):
            await vapi.get_call("x")
    finally:
        await vapi.aclose()
    for error in (refused.value, invalid.value):
        assert KEY not in str(error) and KEY not in repr(error.args)
    assert KEY not in caplog.text


@pytest.mark.asyncio
async def test_unreachable_is_retried_even_for_a_post() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    vapi = client(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(VapiUnreachable) as caught:
            await vapi.create_call(assistant_id="a", phone_number_id="p", number="+15550000001")
    finally:
        await vapi.aclose()
    assert caught.value.sent is False and KEY not in str(caught.value)
