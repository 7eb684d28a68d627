"""SMS egress against the fake Twilio (a real HTTP server) and the real Redis: exactly one
text per reply through 429 storms, timeouts and crashes; consent; permanent failures."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr
from redis.asyncio import Redis

from services.channels.sms.client import TwilioClient
from services.channels.sms.fake import FakeTwilioConfig, FakeTwilioServer
from services.channels.sms.outbound import SmsOutput
from services.channels.sms.rate_limit import SenderRateLimit
from services.channels.sms.store import SmsConsent, SmsLedger
from services.channels.sms.twilio import TwilioSettings
from services.common.backoff import RetryPolicy
from services.common.consuming import PermanentFailure
from shared.contracts import Channel, Lifecycle, Reply
from tests.support.infra import Infra
from tests.support.ops import RecordingOps

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

ACCOUNT = "AC" + "2" * 32
TOKEN = "delivery-test-token"
CUSTOMER = "+14155550199"
FAST = RetryPolicy(max_attempts=30, base_s=0.01, cap_s=0.05, budget_s=30)


@dataclass
class Rig:
    fake: FakeTwilioServer
    redis: Redis
    namespace: str
    ops: RecordingOps
    consent: SmsConsent
    ledger: SmsLedger

    def output(
        self,
        *,
        owner: str = "egress-1",
        timeout_s: float = 5.0,
        policy: RetryPolicy = FAST,
        settle_s: float = 0.2,
    ) -> SmsOutput:
        settings = TwilioSettings(
            twilio_account_sid=ACCOUNT,
            twilio_auth_token=SecretStr(TOKEN),
            twilio_api_base=self.fake.base_url,
        )
        return SmsOutput(
            client=TwilioClient(settings, timeout_s=timeout_s),
            ledger=self.ledger,
            consent=self.consent,
            rate_limit=SenderRateLimit(self.redis, self.namespace, per_second=1000),
            ops=self.ops,  # type: ignore[arg-type]
            sender=settings.sender,
            status_callback=None,
            owner=owner,
            policy=policy,
            settle_s=settle_s,
        )

    def sent_bodies(self, to: str = CUSTOMER) -> list[str]:
        return [m["body"] for m in self.fake.messages() if m["to"] == to]


@pytest_asyncio.fixture
async def rig(infra: Infra, namespace: str, redis: Redis) -> AsyncIterator[Rig]:
    fake = FakeTwilioServer(
        FakeTwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, status_callbacks=False)
    )
    await asyncio.to_thread(fake.start)
    yield Rig(
        fake,
        redis,
        namespace,
        RecordingOps(),
        SmsConsent(redis, namespace),
        SmsLedger(redis, namespace, lease_ms=500),
    )
    await asyncio.to_thread(fake.stop)


def reply(text: str = "Your order ships today.", **overrides: Any) -> Reply:
    fields: dict[str, Any] = {
        "reply_id": uuid.uuid4().hex,
        "in_reply_to": "SM" + secrets.token_hex(16),
        "conversation_id": "conv_" + secrets.token_hex(6),
        "channel": Channel.SMS,
        "address": CUSTOMER,
        "text": text,
    }
    return Reply(**(fields | overrides))


async def test_a_reply_is_sent_once_even_when_delivered_three_times(rig: Rig) -> None:
    output, answer = rig.output(), reply()
    for _ in range(3):
        await output.deliver(answer)
    assert rig.sent_bodies() == [answer.text]
    assert rig.ops.steps().count(Lifecycle.DEDUPED) == 2
    [receipt] = rig.ops.receipts
    assert receipt.provider_message_id == rig.fake.messages()[0]["sid"]


async def test_a_429_storm_delivers_each_reply_exactly_once(rig: Rig) -> None:
    rig.fake.configure(fail_next=12, fail_status=429)
    output = rig.output()
    answers = [reply(f"answer {n}", conversation_id=f"conv_{n}") for n in range(5)]
    await asyncio.gather(*(output.deliver(a) for a in answers))
    assert sorted(rig.sent_bodies()) == sorted(a.text for a in answers)
    refused = [a for a in rig.fake.attempts() if a["status"] == 429]
    assert len(refused) == 12


async def test_a_timed_out_send_that_twilio_took_is_found_not_resent(rig: Rig) -> None:
    # Twilio stores the message, then answers too late: the outcome is unknown to egress.
    rig.fake.configure(hold_after_accept_ms=1500)
    output, answer = rig.output(timeout_s=0.3), reply()
    await output.deliver(answer)
    assert rig.sent_bodies() == [answer.text]
    deduped = [f for step, f in rig.ops.events if step is Lifecycle.DEDUPED]
    assert deduped and deduped[0]["reason"] == "found_at_twilio"


async def test_a_send_twilio_was_still_working_on_when_it_timed_out_is_found_not_resent(
    rig: Rig,
) -> None:
    # Twilio stores the message only after egress gave up waiting: a look-up made at once
    # finds nothing, and resending would text the customer twice.
    rig.fake.configure(latency_ms=600)
    answer = reply()
    await rig.output(timeout_s=0.3, settle_s=1.0).deliver(answer)
    await asyncio.sleep(1.0)  # a second send Twilio was still working on would land by now
    assert rig.sent_bodies() == [answer.text]
    deduped = [f for step, f in rig.ops.events if step is Lifecycle.DEDUPED]
    assert deduped and deduped[0]["reason"] == "found_at_twilio"


async def test_a_crash_between_acceptance_and_commit_sends_no_duplicate(rig: Rig) -> None:
    rig.fake.configure(hold_after_accept_ms=1000)
    answer = rig.output(owner="egress-dead")
    task = asyncio.create_task(answer.deliver(reply_ := reply()))
    while not rig.fake.messages():
        await asyncio.sleep(0.02)
    task.cancel()  # the process "dies": Twilio has the message, the ledger has no sid
    with pytest.raises(asyncio.CancelledError):
        await task
    rig.fake.configure(hold_after_accept_ms=0)
    await rig.output(owner="egress-new").deliver(reply_)  # redelivered to another instance
    assert rig.sent_bodies() == [reply_.text]


async def test_the_same_text_for_two_replies_is_sent_twice(rig: Rig) -> None:
    # Reconciliation matches on text; a message already owned by another reply is not reused.
    output = rig.output()
    first, second = reply("Sorry, I did not get that."), reply("Sorry, I did not get that.")
    await output.deliver(first)
    rig.fake.configure(hold_after_accept_ms=1000)
    await rig.output(timeout_s=0.3).deliver(second)
    assert rig.sent_bodies() == [first.text, second.text]


async def test_21610_marks_the_number_opted_out_and_later_replies_are_suppressed(
    rig: Rig,
) -> None:
    rig.fake.configure(error_for_numbers={CUSTOMER: 21610})
    output = rig.output()
    await output.deliver(reply())
    assert await rig.consent.blocked(CUSTOMER) == "opted_out"
    rig.fake.configure(error_for_numbers={})
    await output.deliver(reply("another answer"))
    assert rig.sent_bodies() == []
    assert len(rig.fake.attempts()) == 1  # the second reply never reached Twilio
    assert [r.error_code for r in rig.ops.receipts] == ["21610", "opted_out"]


async def test_an_invalid_number_is_marked_not_retried_and_parked(rig: Rig) -> None:
    rig.fake.configure(error_for_numbers={CUSTOMER: 21211})
    with pytest.raises(PermanentFailure) as failure:
        await rig.output().deliver(reply())
    assert failure.value.reason == "twilio_21211"
    assert await rig.consent.blocked(CUSTOMER) == "bad_number:21211"
    assert len(rig.fake.attempts()) == 1


async def test_other_4xx_are_parked_at_once_and_can_be_sent_after_a_fix(rig: Rig) -> None:
    rig.fake.configure(error_for_numbers={CUSTOMER: 21606})
    answer = reply()
    with pytest.raises(PermanentFailure) as failure:
        await rig.output().deliver(answer)
    assert failure.value.reason == "twilio_21606"
    assert len(rig.fake.attempts()) == 1
    rig.fake.configure(error_for_numbers={})
    await rig.output().deliver(answer)  # a replay after the sender was fixed
    await rig.output().deliver(answer)  # and a duplicate of it
    assert rig.sent_bodies() == [answer.text]


async def test_exhausted_retries_park_the_reply_as_twilio_unavailable(rig: Rig) -> None:
    rig.fake.configure(fail_next=100, fail_status=503)
    policy = RetryPolicy(max_attempts=3, base_s=0.01, cap_s=0.02, budget_s=5)
    with pytest.raises(PermanentFailure) as failure:
        await rig.output(policy=policy).deliver(reply())
    assert failure.value.reason == "twilio_unavailable"
    assert len([a for a in rig.fake.attempts() if a["status"] == 503]) == 3


async def test_bodies_over_1600_characters_are_refused_before_twilio(rig: Rig) -> None:
    with pytest.raises(PermanentFailure) as failure:
        await rig.output().deliver(reply("x" * 1601))
    assert failure.value.reason == "body_too_long"
    assert rig.fake.attempts() == []


async def test_a_stale_fence_is_refused(rig: Rig) -> None:
    output = rig.output()
    await output.deliver(reply("new worker", conversation_id="conv_f", fence=7))
    await output.deliver(reply("old worker", conversation_id="conv_f", fence=6))
    assert rig.sent_bodies() == ["new worker"]
    assert Lifecycle.FENCED in rig.ops.steps()


async def test_the_send_rate_is_shared_per_sender(redis: Redis, namespace: str) -> None:
    limits = [SenderRateLimit(redis, namespace, per_second=20) for _ in range(2)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(limits[n % 2].acquire("+15005550006") for n in range(11)))
    elapsed = loop.time() - started
    # 11 sends at 20/s across two "instances" need at least 10 intervals of 50 ms.
    assert elapsed >= 0.45
    assert await limits[0].acquire("+15005550007") == 0.0  # another sender is not held up
