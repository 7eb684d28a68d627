"""The chat page in a real headless Chromium, against the whole running system."""

from __future__ import annotations

import shutil

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
