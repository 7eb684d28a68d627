"""What ingress and egress know about live VoIPBin calls, shared through Redis.

VoIPBin's events arrive out of order and more than once, and a transcript names only its
`transcribe_id`, so both sides keep one small record per call:

- `voice:call:<call id>` (hash): `conversation_id`, `caller` (E.164 or SIP target),
  `speaking_id`, `transcribe_id`, `ended`. Written by whoever learns a field first. Egress
  adds `speaking_until_ms` (when the speech it queued should have been heard, an estimate)
  and `talk_only` (the call's speaking session is unusable: speak with `talk`).
- `voice:transcribe:<transcribe id>`: the call it belongs to.
- `voice:event:<key>`: a webhook event already published (ingress dedupe).
- `voice:fetch:<correlation id>`: who answered a held `fetch` (the brain's reply or the
  fallback), claimed once (see `FetchClaims`).
- `voice:reply:<reply id>`: a reply egress carried out (`...:<step>`: one step of it, such as
  the text spoken before a hangup); `voice:fence:<call id>`: the highest fencing token egress
  has seen for the call (a stale brain's replies are refused).

Records expire a day after their last write: calls do not last that long, and a conversation's
memory lives elsewhere (the brain's).

No script or transaction here touches two keys (a Redis Cluster could not run it: the keys are
found by different ids), so the keys carry no hash tag; where two keys are read or written
together, they go in a plain pipeline, which a cluster client splits by node.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from services.common.redis import HSET_EXPIRE, hset_expire, queue_script

CALL_TTL_S = 24 * 3600
EVENT_TTL_S = 3600


@dataclass(frozen=True)
class CallRecord:
    """One call as far as Switchboard knows it."""

    call_id: str
    conversation_id: str = ""
    caller: str = ""
    speaking_id: str = ""
    transcribe_id: str = ""
    ended: bool = False
    speaking_until_ms: int = 0
    """Egress's estimate of when the speech it queued on the call ends (epoch ms)."""
    talk_only: bool = False
    """The speaking session failed for good: egress speaks with `POST /calls/{id}/talk`."""


class CallRegistry:
    """Read and write call records, transcribe mappings and event dedupe marks."""

    # KEYS[1] call record; ARGV[1] now (ms), ARGV[2] speech duration (ms), ARGV[3] TTL (s).
    _QUEUE_SPEECH = """
    local queued = tonumber(redis.call('HGET', KEYS[1], 'speaking_until_ms') or '0') or 0
    local ends = math.max(queued, tonumber(ARGV[1])) + tonumber(ARGV[2])
    redis.call('HSET', KEYS[1], 'speaking_until_ms', string.format('%d', ends))
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    return ends
    """

    # KEYS[1] call record; ARGV[1] now (ms), ARGV[2] digits, ARGV[3] TTL (s).
    # Records this `fetch` round and returns the previous one's (at, digits).
    _NEXT_ROUND = """
    local previous = redis.call('HMGET', KEYS[1], 'round_at_ms', 'round_digits')
    redis.call('HSET', KEYS[1], 'round_at_ms', ARGV[1], 'round_digits', ARGV[2])
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    return previous
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._queue_speech = redis.register_script(self._QUEUE_SPEECH)
        self._next_round = redis.register_script(self._NEXT_ROUND)
        self._hset_expire = redis.register_script(HSET_EXPIRE)

    def _call_key(self, call_id: str) -> str:
        return f"{self._prefix}:voice:call:{call_id}"

    def _transcribe_key(self, transcribe_id: str) -> str:
        return f"{self._prefix}:voice:transcribe:{transcribe_id}"

    async def get(self, call_id: str) -> CallRecord | None:
        """The call's record, or None when nothing is known about it."""
        raw = await self._redis.hgetall(self._call_key(call_id))
        fields = {str(k): str(v) for k, v in raw.items()}
        if not fields:
            return None
        return CallRecord(
            call_id=call_id,
            conversation_id=fields.get("conversation_id", ""),
            caller=fields.get("caller", ""),
            speaking_id=fields.get("speaking_id", ""),
            transcribe_id=fields.get("transcribe_id", ""),
            ended=fields.get("ended") == "1",
            speaking_until_ms=_int(fields.get("speaking_until_ms")),
            talk_only=fields.get("talk_only") == "1",
        )

    async def update(self, call_id: str, **fields: str) -> None:
        """Set some fields of the call's record (creating it) and refresh its expiry."""
        key = self._call_key(call_id)
        if fields.get("transcribe_id"):
            # Its own command, before the record: the mapping is found by transcribe id, so on
            # a cluster it is in another slot than the record's transaction. Written first, a
            # transcript never finds a record naming a transcribe id that maps nowhere.
            await self.map_transcribe(fields["transcribe_id"], call_id)
        await hset_expire(self._hset_expire, key, fields, CALL_TTL_S)

    async def queue_speech(self, call_id: str, duration_ms: int, now_ms: int) -> int:
        """Add `duration_ms` of speech after what is already queued (or after now, when that
        has been heard); returns the new estimate of when the call's speech ends."""
        until = await self._queue_speech(
            keys=[self._call_key(call_id)], args=[now_ms, max(0, duration_ms), CALL_TTL_S]
        )
        return int(until)

    async def clear_speech(self, call_id: str) -> None:
        """The queued speech was flushed: nothing is left to be heard."""
        await self.update(call_id, speaking_until_ms="0")

    async def mark_ended(self, call_id: str) -> None:
        """The call hung up: later replies for it are not spoken."""
        await self.update(call_id, ended="1")

    async def call_of_transcribe(self, transcribe_id: str) -> str | None:
        """The call a transcribe session belongs to, if the mapping is known."""
        call_id = await self._redis.get(self._transcribe_key(transcribe_id))
        return str(call_id) if call_id else None

    async def map_transcribe(self, transcribe_id: str, call_id: str) -> None:
        """Remember which call a transcribe session belongs to (from any source)."""
        await self._redis.set(self._transcribe_key(transcribe_id), call_id, ex=CALL_TTL_S)

    async def seen_event(self, key: str) -> bool:
        """Was this webhook event already published? (see `mark_event`)"""
        return bool(await self._redis.exists(f"{self._prefix}:voice:event:{key}"))

    async def mark_event(self, key: str) -> None:
        """Remember a webhook event as published, so VoIPBin's retries are dropped early."""
        await self._redis.set(f"{self._prefix}:voice:event:{key}", "1", ex=EVENT_TTL_S)

    async def next_round(self, call_id: str, at_ms: int, digits: str) -> tuple[int, str]:
        """Record a `fetch` round (when, which digits); returns the previous round's."""
        previous_at, previous_digits = await self._next_round(
            keys=[self._call_key(call_id)], args=[str(at_ms), digits, CALL_TTL_S]
        )
        return int(previous_at or 0), str(previous_digits or "")

    async def throttle(self, name: str, window_ms: int) -> bool:
        """True at most once per `window_ms` for `name` (barge-in signals, say)."""
        key = f"{self._prefix}:voice:throttle:{name}"
        return bool(await self._redis.set(key, "1", nx=True, px=window_ms))


class FetchOutcome(StrEnum):
    """Who answered a held `fetch` request."""

    REPLY = "reply"
    """The brain's answer reached the holder in time."""
    FALLBACK = "fallback"
    """The deadline came first: the holder answered the fallback actions."""


class FetchClaims:
    """One answer per held `fetch`: the holder at its deadline and egress with the brain's
    reply race for the claim; the loser knows to act otherwise (egress then speaks the late
    answer through the Speaking API instead)."""

    def __init__(self, redis: Redis, prefix: str, ttl_s: int = 600) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_s = ttl_s

    async def claim(self, correlation_id: str, outcome: FetchOutcome) -> FetchOutcome:
        """Claim the answer for `outcome`; returns the outcome that holds (ours if first)."""
        key = f"{self._prefix}:voice:fetch:{correlation_id}"
        if await self._redis.set(key, outcome.value, nx=True, ex=self._ttl_s):
            return outcome
        current = await self._redis.get(key)
        return FetchOutcome(str(current)) if current else outcome


class ReplyLedger:
    """Egress's record of voice replies carried out, with the call's fence."""

    # KEYS[1] call fence; ARGV[1] fence, ARGV[2] TTL (s). 1 accepted (and raised), 0 stale.
    _FENCE = """
    local seen = tonumber(redis.call('GET', KEYS[1]) or '-1')
    if tonumber(ARGV[1]) < seen then return 0 end
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return 1
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._fence = redis.register_script(self._FENCE)

    def _done_key(self, reply_id: str) -> str:
        return f"{self._prefix}:voice:reply:{reply_id}"

    async def check(self, reply_id: str, call_id: str, fence: int | None) -> int:
        """1: carry it out; 0: done before (a redelivery); -1: a stale brain's reply.

        The done mark (by reply) and the call's fence are found by different ids, so they are
        checked in one pipeline, not one script: a cluster runs each on its own node. Nothing
        is lost by that: the done mark is written only after the reply was carried out, so
        even one script could not stop two deliveries racing, and a done reply raising the
        fence to its own token changes nothing (it raised it that far when it was accepted).
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(self._done_key(reply_id))
            if fence is not None:
                key = f"{self._prefix}:voice:fence:{call_id}"
                await queue_script(pipe, self._fence, [key], [str(fence), str(CALL_TTL_S)])
            done, *accepted = await pipe.execute()
        if int(done):
            return 0
        return 1 if not accepted or int(accepted[0]) else -1

    async def done(self, reply_id: str) -> None:
        """Record the reply as carried out."""
        await self._redis.set(self._done_key(reply_id), "1", ex=CALL_TTL_S)

    async def mark_step(self, reply_id: str, step: str) -> None:
        """Record one step of a reply as carried out (so a retry of the rest skips it)."""
        await self._redis.set(f"{self._done_key(reply_id)}:{step}", "1", ex=CALL_TTL_S)

    async def step_done(self, reply_id: str, step: str) -> bool:
        """Whether `mark_step(reply_id, step)` happened."""
        return bool(await self._redis.exists(f"{self._done_key(reply_id)}:{step}"))


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
