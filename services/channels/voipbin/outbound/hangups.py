"""Hang-ups that wait for a goodbye to be heard, without holding up anyone else's speech.

A reply that ends the call must not hang up before its goodbye has played, but egress must not
sleep through that wait either: replies are consumed in batches, and a sleeping `deliver`
would hold every other call's speech until the batch is done (the voice benchmark measured a
10 s stall). So the hangup is *scheduled*: a Redis sorted set `voice:hangups` (call id scored
by when it is due) that one loop per egress instance drains. Claiming a due hangup pushes its
score a lease into the future, so two instances never both run it and a crash between claim
and hangup only delays it; the entry is removed once VoIPBin confirmed (404/409 count: the
call is over anyway).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.cancellation import raise_if_cancelling
from shared.logs import ThrottledLog, get_logger

log = get_logger("egress.voice.hangups")
_redis_unavailable = ThrottledLog(log, "egress.voice.hangups_unavailable")

CLAIM_LEASE_MS = 30_000
MAX_HANGUP_ATTEMPTS = 60
"""About a minute of retries; the caller hangs up themselves if VoIPBin never lets us."""

HangUp = Callable[[str], Awaitable[None]]
"""Hangs one call up; raises when VoIPBin could not be reached (retried later)."""

# KEYS[1] the schedule; ARGV[1] call id, ARGV[2] now (ms), ARGV[3] lease (ms).
# 1 when the hangup was due and is now ours for the lease, else 0.
_CLAIM = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
return 1
"""


def now_ms() -> int:
    return int(time.time() * 1000)


class HangupSchedule:
    """Due hangups in Redis, shared by every egress instance."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._key = f"{prefix}:voice:hangups"
        self._claim = redis.register_script(_CLAIM)

    async def schedule(self, call_id: str, due_ms: int) -> None:
        """Hang `call_id` up at `due_ms` (wall clock, ms); rescheduling moves it."""
        await self._redis.zadd(self._key, {call_id: due_ms})

    async def due(self, at_ms: int, limit: int = 50) -> list[str]:
        """Calls whose hangup is due at `at_ms` (claimed or not)."""
        return [str(c) for c in await self._redis.zrangebyscore(self._key, "-inf", at_ms, 0, limit)]

    async def claim(self, call_id: str, at_ms: int) -> bool:
        """Take a due hangup for `CLAIM_LEASE_MS`; False if not due or someone has it."""
        return bool(await self._claim(keys=[self._key], args=[call_id, at_ms, CLAIM_LEASE_MS]))

    async def done(self, call_id: str) -> None:
        await self._redis.zrem(self._key, call_id)

    async def pending(self, call_id: str) -> bool:
        """Whether a hangup of `call_id` is still scheduled (tests, ops)."""
        return await self._redis.zscore(self._key, call_id) is not None


async def drain_forever(schedule: HangupSchedule, hang_up: HangUp, poll_s: float = 0.1) -> None:
    """The per-instance loop: run each due hangup once; retry a failed one a second later.

    A hangup VoIPBin refuses outright (a 4xx other than 404/409) is dropped after
    `MAX_HANGUP_ATTEMPTS`, so the schedule cannot fill with hopeless entries.
    """
    failures: dict[str, int] = {}
    while True:
        raise_if_cancelling()  # a cancel lost inside a Redis command (gh-86296)
        try:
            at = now_ms()
            for call_id in await schedule.due(at):
                if not await schedule.claim(call_id, at):
                    continue
                try:
                    await hang_up(call_id)
                except Exception as exc:  # VoIPBin away: try again shortly
                    failures[call_id] = failures.get(call_id, 0) + 1
                    log.warning(
                        "egress.voice.hangup_failed",
                        call_id=call_id,
                        error=type(exc).__name__,
                        attempt=failures[call_id],
                    )
                    if failures[call_id] < MAX_HANGUP_ATTEMPTS:
                        await schedule.schedule(call_id, now_ms() + 1_000)
                        continue
                failures.pop(call_id, None)
                await schedule.done(call_id)
        except RedisError as exc:
            # Polled every 100 ms: while Redis is down, one line per window, not ten a second.
            _redis_unavailable.warning(error=type(exc).__name__)
        await asyncio.sleep(poll_s)
