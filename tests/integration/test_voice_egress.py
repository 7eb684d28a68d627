"""Voice egress against the fake VoIPBin (a real HTTP server) and the real Redis, and once
through the real Kafka: sessions, ordered speech, barge-in, hangups, fetch answers, call
states, fallbacks, 429 storms, and an accesskey that never leaks."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis.asyncio import Redis
from structlog.testing import capture_logs

from services.channels.voipbin.client import VoipbinClient
from services.channels.voipbin.fake import (
    FakeVoipbinConfig,
    FakeVoipbinServer,
    validate_action_array,
)
from services.channels.voipbin.outbound import HangupSchedule, VoiceOutput, VoicePolicy
from services.channels.voipbin.settings import VoipbinSettings
from services.channels.voipbin.store import CallRegistry, FetchClaims, FetchOutcome, ReplyLedger
from services.common.backoff import RetryPolicy
from services.common.consuming import PermanentFailure
from services.common.inbox import InboxWriter, inbox_key
from services.egress.config import EgressSettings
from services.egress.main import create_app
from shared.contracts import Channel, Lifecycle, Reply, ReplyKind, ReplyMode
from shared.contracts.inbound import ReplyModeKind
from shared.contracts.inbox import HeldAnswer
from shared.topics import Topics
from tests.support.infra import Infra
from tests.support.kafka import eventually, read_topic
from tests.support.ops import RecordingOps

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

KEY = "voice-egress-accesskey-3b7f0c2a9e"
FAST_RETRY = RetryPolicy(max_attempts=30, base_s=0.005, cap_s=0.05, budget_s=20)
QUICK = VoicePolicy(chars_per_s=1000.0, hangup_wait_max_s=2.0, state_wait_s=5.0)


@dataclass
class Rig:
    fake: FakeVoipbinServer
    redis: Redis
    namespace: str
    ops: RecordingOps
    calls: CallRegistry
    claims: FetchClaims
    clients: list[VoipbinClient] = field(default_factory=list)
    loops: list[asyncio.Task[None]] = field(default_factory=list)

    def output(self, policy: VoicePolicy = QUICK, retry: RetryPolicy = FAST_RETRY) -> VoiceOutput:
        settings = VoipbinSettings(
            voipbin_api_base=self.fake.api_base, voipbin_access_key=SecretStr(KEY)
        )
        client = VoipbinClient(settings, timeout_s=5.0, retry=retry)
        self.clients.append(client)
        output = VoiceOutput(
            client=client,
            hangups=HangupSchedule(self.redis, self.namespace),
            calls=self.calls,
            ledger=ReplyLedger(self.redis, self.namespace),
            claims=self.claims,
            inbox=InboxWriter(self.redis, self.namespace),
            ops=self.ops,  # type: ignore[arg-type]
            policy=policy,
        )
        # Each egress instance runs the loop that carries out scheduled hangups.
        self.loops.append(asyncio.create_task(output.run_hangups(poll_s=0.02)))
        return output

    def said(self, call_id: str) -> list[str]:
        """What the caller heard, in order: `say` and `talk` texts."""
        return [e["text"] for e in self.fake.speech_log(call_id) if e["op"] in ("say", "talk")]

    def ops_at_fake(self, call_id: str) -> list[str]:
        return [e["op"] for e in self.fake.speech_log(call_id)]


@pytest_asyncio.fixture
async def rig(infra: Infra, namespace: str, redis: Redis) -> AsyncIterator[Rig]:
    fake = FakeVoipbinServer(FakeVoipbinConfig(access_key=SecretStr(KEY)))
    await asyncio.to_thread(fake.start)
    rig = Rig(
        fake,
        redis,
        namespace,
        RecordingOps(),
        CallRegistry(redis, namespace),
        FetchClaims(redis, namespace),
    )
    yield rig
    for loop in rig.loops:
        loop.cancel()
    await asyncio.gather(*rig.loops, return_exceptions=True)
    for client in rig.clients:
        await client.aclose()
    await asyncio.to_thread(fake.stop)
    assert not rig.ops.receipts, "voice egress sends no delivery receipts"


def reply(call_id: str, text: str = "", **overrides: Any) -> Reply:
    fields: dict[str, Any] = {
        "reply_id": uuid.uuid4().hex,
        "in_reply_to": "tr-" + secrets.token_hex(6),
        "conversation_id": "conv_" + call_id[:8],
        "channel": Channel.VOICE,
        "address": call_id,
        "text": text,
    }
    return Reply(**(fields | overrides))


def sync_mode(correlation_id: str, holder: str = "ingress-a") -> ReplyMode:
    return ReplyMode(
        kind=ReplyModeKind.SYNC,
        deadline_at=datetime.now(UTC) + timedelta(seconds=5),
        correlation_id=correlation_id,
        reply_to=holder,
    )


async def opened(rig: Rig, output: VoiceOutput, **call: Any) -> str:
    call_id: str = rig.fake.add_call(**call)["id"]
    await output.deliver(reply(call_id, kind=ReplyKind.OPEN))
    return call_id


async def reliably(deliver: Callable[[], Awaitable[None]], attempts: int = 20) -> None:
    """What process_reliably does with a retryable error: try again."""
    for attempt in range(attempts):
        try:
            await deliver()
            return
        except PermanentFailure:
            raise
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.02)


# -- sessions -------------------------------------------------------------------------------


async def test_open_starts_one_transcribe_and_one_speaking_even_when_redelivered(
    rig: Rig,
) -> None:
    output = rig.output()
    call_id = rig.fake.add_call()["id"]
    open_call = reply(call_id, kind=ReplyKind.OPEN)
    await output.deliver(open_call)
    await output.deliver(open_call)  # Kafka redelivery
    await output.deliver(reply(call_id, kind=ReplyKind.OPEN))  # a second OPEN for the call
    [transcribe] = rig.fake.transcribes(call_id)
    [speaking] = rig.fake.speakings(call_id)
    assert transcribe["direction"] == "in" and speaking["direction"] == "out"
    record = await rig.calls.get(call_id)
    assert record is not None
    assert (record.transcribe_id, record.speaking_id) == (transcribe["id"], speaking["id"])
    assert record.conversation_id == open_call.conversation_id
    assert await rig.calls.call_of_transcribe(transcribe["id"]) == call_id  # ingress needs it
    assert rig.ops.steps().count(Lifecycle.DEDUPED) == 1


async def test_close_stops_both_sessions_and_nothing_is_said_after_it(rig: Rig) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    await output.deliver(reply(call_id, kind=ReplyKind.CLOSE))
    assert [s["status"] for s in rig.fake.speakings(call_id)] == ["stopped"]
    assert [t["status"] for t in rig.fake.transcribes(call_id)] == ["done"]
    record = await rig.calls.get(call_id)
    assert record is not None and record.ended
    await output.deliver(reply(call_id, "Are you still there?"))
    assert rig.said(call_id) == []
    assert rig.ops.of(Lifecycle.REJECTED)[-1]["reason"] == "call_ended"


async def test_close_of_a_call_voipbin_already_ended_is_handled(rig: Rig) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    rig.fake.set_call_status(call_id, "hangup")
    await rig.calls.mark_ended(call_id)  # ingress saw call_hangup first
    await output.deliver(reply(call_id, kind=ReplyKind.CLOSE))  # no error: CLOSE always runs
    assert len(rig.fake.requests("POST", "/speakings/")) == 1  # the stop was still sent
    assert len(rig.fake.requests("POST", "/transcribes/")) == 1


# -- speech ---------------------------------------------------------------------------------


async def test_parts_are_said_in_order_and_a_redelivered_part_is_not_said_again(
    rig: Rig,
) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    parts = [
        reply(call_id, text, part=n, final=False, fence=3)
        for n, text in enumerate(["Sure.", "Your order shipped today.", "Anything else?"])
    ]
    for part in parts:
        await output.deliver(part)
    await output.deliver(parts[1])  # redelivered after a rebalance
    assert rig.said(call_id) == ["Sure.", "Your order shipped today.", "Anything else?"]
    assert len(rig.ops.of(Lifecycle.DELIVERED)) == 3
    assert [e["reply_id"] for e in rig.ops.of(Lifecycle.DEDUPED)] == [parts[1].reply_id]
    assert {e["attributes"]["via"] for e in rig.ops.of(Lifecycle.DELIVERED)} == {"say"}


async def test_a_missing_speaking_session_is_created_on_first_speech(rig: Rig) -> None:
    output = rig.output()
    call_id = rig.fake.add_call()["id"]
    await output.deliver(reply(call_id, "Hello!"))  # no OPEN seen (yet)
    assert rig.said(call_id) == ["Hello!"]
    assert len(rig.fake.speakings(call_id)) == 1


async def test_a_stale_fence_is_refused(rig: Rig) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    await output.deliver(reply(call_id, "From the new worker.", fence=8))
    await output.deliver(reply(call_id, "From the old worker.", fence=7))
    assert rig.said(call_id) == ["From the new worker."]
    [fenced] = rig.ops.of(Lifecycle.FENCED)
    assert fenced["reason"] == "stale_fencing_token"


async def test_stop_flushes_the_speaking_session(rig: Rig) -> None:
    output = rig.output(VoicePolicy(chars_per_s=1.0))
    call_id = await opened(rig, output)
    await output.deliver(reply(call_id, "A long explanation about shipping."))
    record = await rig.calls.get(call_id)
    assert record is not None and record.speaking_until_ms > time.time() * 1000
    stop = reply(call_id, kind=ReplyKind.STOP)
    await output.deliver(stop)
    assert rig.ops_at_fake(call_id) == ["say", "flush"]
    [interrupted] = rig.ops.of(Lifecycle.INTERRUPTED)
    assert interrupted["reply_id"] == stop.reply_id
    record = await rig.calls.get(call_id)
    assert record is not None and record.speaking_until_ms == 0


async def test_end_call_hangs_up_after_the_speech_is_heard(rig: Rig) -> None:
    # 40 characters at 50 characters/s: 0.8 s of speech before the hangup.
    output = rig.output(VoicePolicy(chars_per_s=50.0, hangup_wait_max_s=5.0))
    call_id = await opened(rig, output)
    text = "Thanks for calling, have a great day!!!"
    started = time.monotonic()
    await output.deliver(reply(call_id, text + "!", end_call=True))
    assert time.monotonic() - started < 0.5, "the wait must not hold up other calls' replies"
    [say] = rig.fake.requests("POST", "/speakings/")
    assert await eventually(lambda: rig.fake.requests("POST", f"/calls/{call_id}/hangup"))
    [hangup] = rig.fake.requests("POST", f"/calls/{call_id}/hangup")
    assert hangup["status"] == 200
    assert 0.7 <= hangup["time"] - say["time"] < 3.0
    assert rig.fake.call(call_id)["status"] == "hangup"
    [delivered] = rig.ops.of(Lifecycle.DELIVERED)
    assert delivered["attributes"]["hangup"] is True

    # The call is marked ended once VoIPBin has answered the hangup, a moment after the fake
    # recorded the request: wait for it rather than race it (it lost under load).
    async def ended() -> bool:
        record = await rig.calls.get(call_id)
        return record is not None and record.ended

    assert await eventually(ended)


async def test_the_wait_before_a_hangup_is_capped(rig: Rig) -> None:
    output = rig.output(VoicePolicy(chars_per_s=10.0, hangup_wait_max_s=0.3))
    call_id = await opened(rig, output)
    started = time.monotonic()
    await output.deliver(reply(call_id, "x" * 300, end_call=True))  # 30 s of speech
    assert await eventually(lambda: rig.fake.call(call_id)["status"] == "hangup", timeout_s=5)
    assert time.monotonic() - started < 2.0


async def test_a_hangup_retried_after_an_outage_does_not_repeat_the_text(rig: Rig) -> None:
    # "Goodbye." plays for 0.4 s: VoIPBin fails while egress waits to hang up.
    output = rig.output(VoicePolicy(chars_per_s=20.0), retry=RetryPolicy(max_attempts=1))
    call_id = await opened(rig, output)
    answer = reply(call_id, "Goodbye.", end_call=True)
    goodbye = asyncio.create_task(reliably(lambda: output.deliver(answer)))
    await eventually(lambda: rig.said(call_id), timeout_s=5)
    rig.fake.configure(fail_next=1, fail_status=503)
    await asyncio.wait_for(goodbye, 10)
    assert await eventually(
        lambda: (
            [r["status"] for r in rig.fake.requests("POST", f"/calls/{call_id}/hangup")]
            == [503, 200]
        ),
        timeout_s=10,
    ), rig.fake.requests("POST", f"/calls/{call_id}/hangup")
    assert rig.said(call_id) == ["Goodbye."]


# -- call states ----------------------------------------------------------------------------


async def test_a_409_before_the_call_is_answered_is_retried_until_it_is(rig: Rig) -> None:
    output = rig.output()
    call_id = rig.fake.add_call(status="ringing")["id"]
    delivery = asyncio.create_task(output.deliver(reply(call_id, "Hi, thanks for calling.")))
    await eventually(lambda: rig.fake.requests("GET", f"/calls/{call_id}"), timeout_s=5)
    await asyncio.sleep(0.3)
    rig.fake.set_call_status(call_id, "progressing")
    await asyncio.wait_for(delivery, 10)
    assert rig.said(call_id) == ["Hi, thanks for calling."]
    refused = [r for r in rig.fake.requests("POST", "/speakings") if r["status"] == 409]
    assert refused, "the first attempts met a ringing call"


async def test_a_call_never_answered_is_parked_as_state_invalid(rig: Rig) -> None:
    output = rig.output(VoicePolicy(state_wait_s=0.5))
    call_id = rig.fake.add_call(status="ringing")["id"]
    started = time.monotonic()
    with pytest.raises(PermanentFailure) as parked:
        await output.deliver(reply(call_id, kind=ReplyKind.OPEN))
    assert parked.value.reason == "voipbin_state_invalid"
    assert time.monotonic() - started < 3.0


async def test_nothing_is_said_on_a_call_voipbin_reports_hung_up(rig: Rig) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    rig.fake.set_call_status(call_id, "hangup")  # the event has not reached ingress yet
    await output.deliver(reply(call_id, "One more thing..."))
    assert rig.said(call_id) == []
    assert rig.fake.requests("POST", f"/calls/{call_id}/talk") == []  # no talk fallback
    assert rig.ops.of(Lifecycle.REJECTED)[-1]["reason"] == "call_ended"
    record = await rig.calls.get(call_id)
    assert record is not None and record.ended


async def test_nothing_is_sent_for_a_call_the_registry_marks_ended(rig: Rig) -> None:
    output = rig.output()
    call_id = rig.fake.add_call()["id"]
    await rig.calls.mark_ended(call_id)
    for kind in (ReplyKind.OPEN, ReplyKind.MESSAGE, ReplyKind.STOP):
        await output.deliver(reply(call_id, "Hello?", kind=kind))
    assert rig.fake.requests() == []
    assert [e["reason"] for e in rig.ops.of(Lifecycle.REJECTED)] == ["call_ended"] * 3


async def test_an_address_that_is_not_a_call_id_is_parked(rig: Rig) -> None:
    with pytest.raises(PermanentFailure) as parked:
        await rig.output().deliver(reply("../customer", "hi"))
    assert parked.value.reason == "invalid_address"
    assert rig.fake.requests() == []


async def test_other_4xx_are_parked_with_voipbins_reason(rig: Rig) -> None:
    with pytest.raises(PermanentFailure) as parked:
        await rig.output().deliver(reply(str(uuid.uuid4()), kind=ReplyKind.OPEN))
    assert parked.value.reason == "voipbin_resource_not_found"


# -- fallbacks ------------------------------------------------------------------------------


async def test_a_stopped_speaking_session_falls_back_to_talk(rig: Rig) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    record = await rig.calls.get(call_id)
    assert record is not None
    await output._client.stop_speaking(record.speaking_id)
    await output.deliver(reply(call_id, "First.", part=0, final=False))
    await output.deliver(reply(call_id, "Second.", part=1))
    assert rig.said(call_id) == ["First.", "Second."]
    assert [e["op"] for e in rig.fake.speech_log(call_id)] == ["stop", "talk", "talk"]
    assert len(rig.fake.speakings(call_id)) == 1  # not recreated for every part
    assert [e["attributes"]["via"] for e in rig.ops.of(Lifecycle.DELIVERED)] == ["talk", "talk"]


async def test_an_unknown_speaking_session_falls_back_to_talk(rig: Rig) -> None:
    output = rig.output()
    call_id = rig.fake.add_call()["id"]
    await rig.calls.update(call_id, speaking_id=str(uuid.uuid4()))  # VoIPBin forgot it
    await output.deliver(reply(call_id, "Still here."))
    assert rig.said(call_id) == ["Still here."]
    assert rig.fake.speech_log(call_id)[0]["op"] == "talk"


# -- fetch (sync) answers -------------------------------------------------------------------


async def test_a_sync_reply_answers_the_held_fetch_through_the_inbox(rig: Rig) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    answer = reply(
        call_id, "We open at nine.", end_call=True, reply=sync_mode("corr-1", "ingress-a")
    )
    await output.deliver(answer)
    await output.deliver(answer)  # redelivered: no second entry
    entries = await rig.redis.xrange(inbox_key(rig.namespace, "ingress-a"))
    [(_, entry)] = entries
    assert entry["kind"] == HeldAnswer.kind
    assert entry["correlation_id"] == "corr-1"
    actions = json.loads(entry["body"])
    assert validate_action_array(actions) == []
    assert [a["type"] for a in actions] == ["talk", "hangup"]
    assert actions[0]["option"]["text"] == "We open at nine."
    assert rig.said(call_id) == []  # the flow's talk action speaks it, not the Speaking API
    assert rig.fake.requests("POST", f"/calls/{call_id}/hangup") == []
    [queued] = rig.ops.of(Lifecycle.QUEUED)
    assert queued["attributes"]["holder"] == "ingress-a"


async def test_a_sync_reply_that_lost_to_the_fallback_is_said_late(rig: Rig) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    assert await rig.claims.claim("corr-2", FetchOutcome.FALLBACK) is FetchOutcome.FALLBACK
    late = reply(call_id, "Sorry for the wait: we open at nine.", reply=sync_mode("corr-2"))
    await output.deliver(late)
    assert await rig.redis.xrange(inbox_key(rig.namespace, "ingress-a")) == []
    assert rig.said(call_id) == ["Sorry for the wait: we open at nine."]
    [delivered] = rig.ops.of(Lifecycle.DELIVERED)
    assert delivered["attributes"]["late_for_fetch"] is True


async def test_a_late_sync_reply_that_ends_the_call_hangs_up_after_it(rig: Rig) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    await rig.claims.claim("corr-3", FetchOutcome.FALLBACK)
    await output.deliver(reply(call_id, "Goodbye.", end_call=True, reply=sync_mode("corr-3")))
    assert rig.said(call_id) == ["Goodbye."]
    assert await eventually(lambda: rig.fake.call(call_id)["status"] == "hangup", timeout_s=5)


# -- rate limits ----------------------------------------------------------------------------


async def test_a_429_storm_says_each_part_exactly_once(rig: Rig) -> None:
    output = rig.output()
    calls = [await opened(rig, output) for _ in range(3)]
    rig.fake.configure(fail_next=25, fail_status=429)
    texts = {call_id: [f"{call_id[:4]} part {n}." for n in range(4)] for call_id in calls}

    async def conversation(call_id: str) -> None:  # one conversation's parts go in order
        for n, text in enumerate(texts[call_id]):
            part = reply(call_id, text, part=n, final=n == 3)
            await reliably(lambda part=part: output.deliver(part))  # type: ignore[misc]

    await asyncio.gather(*(conversation(call_id) for call_id in calls))
    for call_id in calls:
        assert rig.said(call_id) == texts[call_id]
    assert len([r for r in rig.fake.requests() if r["status"] == 429]) == 25


async def test_a_rate_limited_account_says_each_part_exactly_once(rig: Rig) -> None:
    output = rig.output()
    call_id = await opened(rig, output)
    rig.fake.configure(rate_limit_per_second=2, retry_after=0)
    texts = [f"Sentence {n}." for n in range(6)]
    for n, text in enumerate(texts):
        part = reply(call_id, text, part=n, final=False)
        await reliably(lambda part=part: output.deliver(part))  # type: ignore[misc]
    assert rig.said(call_id) == texts


# -- through Kafka, with the egress app ------------------------------------------------------


@pytest.fixture
def egress_app(
    infra: Infra, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[EgressSettings, FakeVoipbinServer]]:
    # The voice channel's speaking rate (its own setting): speech "plays" in no time here.
    monkeypatch.setenv("VOIPBIN_SPEECH_CHARS_PER_S", "1000")
    fake = FakeVoipbinServer(FakeVoipbinConfig(access_key=SecretStr(KEY))).start()
    settings = EgressSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        redis_url=infra.redis_url,
        topic_namespace=namespace,
        redis_prefix=namespace,
        topic_partitions=2,
        max_attempts=2,
        voipbin_api_base=fake.api_base,
        voipbin_access_key=SecretStr(KEY),
        voice_max_attempts=2,
        voice_backoff_base_s=0.01,
        voice_backoff_cap_s=0.02,
        voice_state_wait_s=0.3,
    )
    with TestClient(create_app(settings)):
        yield settings, fake
    fake.stop()


async def publish(settings: EgressSettings, *replies: Reply) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for answer in replies:
            await producer.send_and_wait(
                settings.topics.replies(Channel.VOICE),
                answer.model_dump_json().encode(),
                key=answer.conversation_id.encode(),
            )
    finally:
        await producer.stop()


async def test_egress_speaks_replies_from_kafka_and_parks_failures_without_the_key(
    egress_app: tuple[EgressSettings, FakeVoipbinServer],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    settings, fake = egress_app
    topics: Topics = settings.topics
    bootstrap = settings.kafka_bootstrap_servers

    async def reasons(count: int) -> list[str]:
        letters = await read_topic(bootstrap, topics.dlq_replies, lambda got: len(got) >= count)
        return sorted(letter["reason"] for letter in letters)

    with capture_logs() as structured:
        good = fake.add_call()["id"]
        ringing = fake.add_call(status="ringing")["id"]
        await publish(
            settings,
            reply(good, kind=ReplyKind.OPEN),
            reply(good, "Hello from Kafka."),
            reply(str(uuid.uuid4()), kind=ReplyKind.OPEN),  # VoIPBin knows no such call: 404
            reply(ringing, "Never answered."),  # 409 until the state wait runs out
        )
        said = await eventually(lambda: [e["text"] for e in fake.speech_log(good)])
        assert said == ["Hello from Kafka."]
        assert await reasons(2) == ["voipbin_resource_not_found", "voipbin_state_invalid"]
        # VoIPBin refuses the key (401), then fails with 503s past every retry.
        fake.configure(access_key=SecretStr("rotated-" + KEY))
        await publish(settings, reply(good, "Refused."))
        assert "voipbin_invalid_credentials" in await reasons(3)
        fake.configure(access_key=SecretStr(KEY), fail_next=1000, fail_status=503)
        await publish(settings, reply(good, "Unavailable."))
        assert "processing_failed" in await reasons(4)
        letters = await read_topic(bootstrap, topics.dlq_replies, lambda got: len(got) >= 4)
        ops = await read_topic(
            bootstrap,
            topics.ops,
            lambda got: sum(e.get("step") == "dead_lettered" for e in got) >= 4,
        )
    assert any("503" in letter["error"] for letter in letters)
    assert any(e.get("step") == "delivered" for e in ops)
    events = [entry["event"] for entry in structured]
    # Failures were logged. (Whether the client's own retry log appears depends on which
    # request meets the first 503: a call lookup is not retried by the client, a `say` is.)
    assert "consume.retry" in events
    captured = capfd.readouterr()
    for where, text in {
        "dead letters": json.dumps(letters),
        "ops events": json.dumps(ops),
        "structured logs": json.dumps(structured, default=str),
        "stdlib logs": caplog.text,
        "stdout": captured.out,
        "stderr": captured.err,
    }.items():
        assert KEY not in text, f"the accesskey leaked into {where}"
