"""The chat page in a real headless Chromium, against the whole running system."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from playwright.async_api import async_playwright

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATE = "window.switchboardChat && window.switchboardChat.state()"


async def test_page_chats_through_the_pipeline_and_survives_a_reload(stack: Stack) -> None:
    if not shutil.which("chromium"):
        pytest.fail("Debian's chromium is needed: apt-get install chromium (make test does it)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        await page.goto(f"{stack.ingress_url}/")
        await page.wait_for_function(f"{STATE}.status === 'online'", timeout=20_000)

        await page.fill("#composer-input", "Hello from a real browser")
        await page.press("#composer-input", "Enter")
        await page.wait_for_function(f"{STATE}.shown === 1", timeout=20_000)
        agent = page.locator(".msg.agent .msg-body")
        assert await agent.last.inner_text() == "You said: Hello from a real browser"
        assert await page.locator(".msg.user").last.get_attribute("data-state") == "sent"

        await page.reload()
        await page.wait_for_function(f"{STATE}.status === 'online'", timeout=20_000)
        await page.fill("#composer-input", "And again")
        await page.click("#send-button")
        await page.wait_for_function(f"{STATE}.shown === 2", timeout=20_000)
        texts = await agent.all_inner_texts()
        assert texts == ["You said: Hello from a real browser", "You said: And again"]
        await browser.close()
    # Same session across the reload: the model saw the first turn in the second request.
    second = [m["content"] for m in stack.model.state.requests[1]["messages"]]
    assert "Hello from a real browser" in second


async def test_page_retries_only_unavailable_and_gives_up_on_a_socket_killing_message(
    stack: Stack,
) -> None:
    """The page's retry policy (docs/web-chat.md), with the socket routed through Playwright so
    the test decides how the "server" answers particular messages."""
    if not shutil.which("chromium"):
        pytest.fail("Debian's chromium is needed: apt-get install chromium (make test does it)")
    sent: dict[str, int] = {}

    def route(ws: Any) -> None:
        server = ws.connect_to_server()

        async def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            text = frame.get("text", "")
            if frame.get("type") == "message":
                sent[text] = sent.get(text, 0) + 1
            if text == "busy twice" and sent[text] <= 2:
                ws.send(json.dumps({"type": "error", "code": "unavailable", "id": frame["id"]}))
            elif text == "refused":
                ws.send(json.dumps({"type": "error", "code": "bad_frame", "id": frame["id"]}))
            elif text == "poison":
                await ws.close(code=1011, reason="simulated crash")  # as if the frame killed it
            else:
                server.send(message)

        ws.on_message(from_page)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        await page.route_web_socket("**/v1/chat/ws*", route)
        await page.goto(f"{stack.ingress_url}/")
        await page.wait_for_function(f"{STATE}.status === 'online'", timeout=20_000)

        # `unavailable` is retried with the same message until the server accepts it.
        await page.fill("#composer-input", "busy twice")
        await page.press("#composer-input", "Enter")
        await page.wait_for_function(f"{STATE}.shown === 1", timeout=30_000)
        assert sent["busy twice"] == 3
        assert await page.locator(".msg.user").last.get_attribute("data-state") == "sent"

        # Any other code is permanent: failed at once, never resent.
        await page.fill("#composer-input", "refused")
        await page.press("#composer-input", "Enter")
        await page.wait_for_function(f"{STATE}.failed === 1 && {STATE}.pending === 0")

        # A message that kills the socket is resent on reconnect, but only three times.
        await page.fill("#composer-input", "poison")
        await page.press("#composer-input", "Enter")
        gave_up = f"{STATE}.failed === 2 && {STATE}.pending === 0"
        try:
            await page.wait_for_function(gave_up, timeout=30_000)
        except Exception:
            outbox = await page.evaluate("localStorage.getItem('switchboard.chat.outbox')")
            raise AssertionError(f"{sent} {await page.evaluate(STATE)} {outbox}") from None
        await page.wait_for_function(f"{STATE}.status === 'online'", timeout=20_000)
        await page.wait_for_timeout(3_000)
        assert sent == {"busy twice": 3, "refused": 1, "poison": 3}
        await browser.close()
