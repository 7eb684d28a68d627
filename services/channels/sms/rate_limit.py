"""A send-rate limit per sender, shared by every egress instance through Redis.

Carriers and Twilio meter each sender (a long code sends about 1 SMS/s in the US; Twilio
queues the excess for hours rather than refusing it), so the limit belongs to the sender, not
to an egress instance. It is a GCRA: one Redis key per sender holds the theoretical arrival
time of the next send, and Redis's own clock decides, so instance clocks do not matter.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

# KEYS: the sender's key. ARGV: interval µs, burst. Reserves the caller's slot and returns the
# µs to wait for it (0: send now). Reserving means one call per send: waiters do not wake
# together and race for the same slot.
_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - interval * (tonumber(ARGV[2]) - 1)
if wait < 0 then wait = 0 end
redis.call('SET', KEYS[1], string.format('%d', tat + interval), 'PX',
  math.ceil((tat + interval - now) / 1000) + 1000)
return math.floor(wait)
"""


class SenderRateLimit:
    """At most `per_second` sends per sender across all instances (bursts up to `burst`)."""

    def __init__(self, redis: Redis, prefix: str, per_second: float, burst: int = 1) -> None:
        self._prefix = prefix
        self._interval_us = max(1, round(1_000_000 / per_second))
        self._burst = burst
        self._gcra = redis.register_script(_GCRA)

    async def acquire(self, sender: str) -> float:
        """Reserve the sender's next send slot and wait for it; returns the seconds waited."""
        wait_us = int(
            await self._gcra(
                keys=[f"{self._prefix}:sms:rate:{sender}"],
                args=[self._interval_us, self._burst],
            )
        )
        if wait_us > 0:
            await asyncio.sleep(wait_us / 1_000_000)
        return wait_us / 1_000_000
