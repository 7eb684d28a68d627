"""A Kafka outage of 90 s under chat and SMS load, with every service a real process.

What must hold (issue 11, part 1 and 2):
- during the outage ingress is not ready, chat messages get the `unavailable` frame and
  Twilio webhooks get 503, and no socket is dropped;
- afterwards, with nobody touching anything, every message that was acknowledged is answered
  exactly once and in order per conversation (producers that Kafka no longer accepts after
  such a gap are replaced by themselves);
- the services log the outage, not every retry: the line count stays under a bound.

The broker is this test's own (`PrivateKafka`): stopping the shared one would break every
other test running at the same time.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.support.chat import new_session
from tests.support.infra import Infra
from tests.support.kafka import eventually
from tests.support.private_kafka import PrivateKafka
from tests.support.traffic import ChatSession, post_inbound_sms

pytestmark = [pytest.mark.resilience, pytest.mark.asyncio, pytest.mark.timeout(900)]

OUTAGE_S = float(os.environ.get("TEST_KAFKA_OUTAGE_S", "90"))
OUTAGE_KAFKA_PORT = int(os.environ.get("TEST_OUTAGE_KAFKA_PORT", "29192"))
CHAT_SESSIONS = 8
SMS_NUMBERS = 4
# Lines all three services may write during the outage: the start of each outage, summaries
# every 10 s, per-message retries and library reconnect lines folded. Measured ~80/min; the
# field saw ~17,000 per second from ingress alone before the fix.
MAX_LOG_LINES_PER_MINUTE = 150


@pytest.fixture
def kafka() -> Iterator[PrivateKafka]:
    broker = PrivateKafka(OUTAGE_KAFKA_PORT, "outage")
    broker.destroy()  # a fresh broker: no topics or groups left from an earlier run
    broker.start()
    yield broker
    broker.destroy()


@pytest.fixture
def outage_stack(
    kafka: PrivateKafka, infra: Infra, namespace: str, tmp_path: Path
) -> Iterator[Stack]:
    private = Infra(kafka.bootstrap, infra.redis_url, [])
    with running_stack(
        private,
        namespace,
        tmp_path,
        INGRESS_PUBLISH_TIMEOUT_S="3",
        BRAIN_SMS_COLLECT_WINDOW_MS="300",
    ) as stack:
        yield stack


class SmsLoad:
    """One phone: texts, and re-posts the same MessageSid on 503 as Twilio does."""

    def __init__(self, stack: Stack, number: str) -> None:
        self.stack = stack
        self.number = number
        self.accepted: list[str] = []
        self.refused_503 = 0
        self.other_status: list[int] = []

    async def run(self, stop: asyncio.Event) -> None:
        index = 0
        async with httpx.AsyncClient(timeout=20) as client:
            while not stop.is_set():
                body = f"sms-{self.number[-4:]}-{index}"
                sid = "SM" + secrets.token_hex(16)
                while not stop.is_set():
                    status = await self._post(client, sid, body)
                    if status == 200:
                        self.accepted.append(body)
                        index += 1
                        break
                    if status == 503:
                        self.refused_503 += 1
                    else:
                        self.other_status.append(status)
                    await asyncio.sleep(1.0)
                # Longer than the collect window, so each text is its own turn.
                await asyncio.sleep(1.5)

    async def _post(self, client: httpx.AsyncClient, sid: str, body: str) -> int:
        try:
            response = await post_inbound_sms(client, self.stack, self.number, sid, body)
        except httpx.HTTPError:
            return 0
        return response.status_code


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) each service process has used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, process in stack.services.items():
        assert process.process is not None
        fields = Path(f"/proc/{process.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def log_lines(stack: Stack) -> int:
    return sum(
        len(process.log_path.read_text(errors="replace").splitlines())
        for process in stack.services.values()
    )


async def status_of(url: str) -> int | None:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(url, timeout=3)).status_code
    except httpx.HTTPError:
        return None


async def test_a_long_kafka_outage_heals_by_itself(
    outage_stack: Stack, kafka: PrivateKafka
) -> None:
    stack = outage_stack
    chats = []
    for index in range(CHAT_SESSIONS):
        session = await new_session(stack.ingress_url)
        chats.append(ChatSession(stack.ingress_url, session["token"], f"c{index}", None, 0.3))
    phones = [SmsLoad(stack, f"+1415555{1000 + index:04d}") for index in range(SMS_NUMBERS)]
    stop = asyncio.Event()
    load = [asyncio.create_task(c.run(stop)) for c in chats] + [
        asyncio.create_task(p.run(stop)) for p in phones
    ]

    await asyncio.sleep(8)  # warm: answered before the outage
    assert all(chat.replies for chat in chats), "load did not run before the outage"

    lines_before = log_lines(stack)
    cpu_before = cpu_seconds(stack)
    kafka.stop()
    outage_started = time.monotonic()
    readyz = f"{stack.ingress_url}/readyz"
    assert await eventually(lambda: _is(readyz, 503), timeout_s=30), "ingress stayed ready"
    for name in ("brain", "egress"):
        url = f"{stack.services[name].url}/readyz"
        assert await eventually(lambda url=url: _is(url, 503), timeout_s=30), f"{name} ready"
    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
    unavailable_during = sum(len(chat.outcomes.refused_sent_at) for chat in chats)
    refused_during = sum(phone.refused_503 for phone in phones)
    outage_s = time.monotonic() - outage_started
    outage_lines = log_lines(stack) - lines_before
    cpu_share = {
        name: (used - cpu_before[name]) / outage_s for name, used in cpu_seconds(stack).items()
    }
    # Alive all along: an outage of Kafka itself is not a wedge.
    for process in stack.services.values():
        assert await status_of(f"{process.url}/livez") == 200
    kafka.start()

    for name, process in stack.services.items():
        url = f"{process.url}/readyz"
        assert await eventually(lambda url=url: _is(url, 200), timeout_s=60), (
            f"{name} did not become ready after Kafka came back:\n{process.log_tail()}"
        )
    await asyncio.sleep(10)  # traffic after the outage, on the healed producers
    stop.set()
    await asyncio.gather(*load)

    assert unavailable_during > 0, "no chat message got `unavailable` during the outage"
    assert refused_during > 0, "no webhook got 503 during the outage"
    assert not [s for phone in phones for s in phone.other_status if s != 0]
    assert all(chat.closed_unexpectedly == 0 for chat in chats)
    assert [o for chat in chats for o in chat.outcomes.other] == [], "only ack or unavailable"

    # Every acknowledged chat message answered exactly once, in order.
    for chat in chats:
        await eventually(
            lambda chat=chat: {r["in_reply_to"] for r in chat.replies} >= set(chat.acked),
            timeout_s=60,
        )
    for chat in chats:
        answered = [reply["in_reply_to"] for reply in chat.replies]
        assert set(answered) >= set(chat.acked), f"{chat.name}: unanswered"
        assert [k for k, n in Counter(answered).items() if n > 1] == [], f"{chat.name}: doubled"
        assert answered == sorted(answered, key=lambda mid: int(mid.split("-")[1]))
        assert [r["text"] for r in chat.replies] == [f"You said: {mid}" for mid in answered]

    # Every accepted text answered by exactly one SMS, in order.
    def sent(number: str) -> list[str]:
        return [m["body"] for m in stack.twilio.messages() if m["to"] == number]

    for phone in phones:
        expected = [f"You said: {body}" for body in phone.accepted]
        await eventually(lambda p=phone, e=expected: len(sent(p.number)) >= len(e), timeout_s=60)
        assert sent(phone.number) == expected, phone.number

    per_minute = outage_lines / outage_s * 60
    print(f"\nlog lines during a {outage_s:.0f} s outage: {outage_lines} ({per_minute:.0f}/min)")
    print("CPU share of one core during the outage (under load):", cpu_share)
    # Reconnecting must not spin: the field saw ingress at 100 % of a core. Under this load a
    # healthy service stays far below half a core.
    assert all(share < 0.5 for share in cpu_share.values()), cpu_share
    assert per_minute <= MAX_LOG_LINES_PER_MINUTE, f"{outage_lines} lines in {outage_s:.0f} s"
    for name, process in stack.services.items():
        text = process.log_path.read_text(errors="replace")
        assert "Traceback" not in text
        healing = [e for e in ("kafka.producer.replacing", "dependency.restored") if e in text]
        print(f"{name}: {healing} ({text.count('kafka.producer.replacing')} replacements)")


async def _is(url: str, expected: int) -> bool:
    return await status_of(url) == expected
