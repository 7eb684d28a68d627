"""Link state in Redis. Every step is one Lua script, so concurrent requests cannot race.

- `link:pending:{<session>}`: hash `link_id, phone, digest, attempts, state` of the session's
  one pending link (a new start replaces it); expires with the code.
- `link:starts:session:{<session>}`, `link:starts:phone:<e164>`: fixed-window counters of
  link starts (rate limits).
- `identity:chat:<session>`: the explicit mapping the resolver honours, written on success.

On Redis Cluster a script must keep its keys in one hash slot. The session's keys share the
session as hash tag; the phone counter (shared by every session) and the identity mapping (read
by the resolver by address) cannot join them, so `start` and `finish` run as two single-slot
steps each, in an order whose crash in between is harmless (see there).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.common.redis import hash_tag
from services.ingress.identity import identity_key
from shared.contracts import Channel

# The wait (ms) before a fixed-window counter at `limit` has room again; 0 when it has.
_WAIT_MS = """
local function wait_ms(key, limit, window)
  local used = tonumber(redis.call('GET', key) or '0')
  if used < tonumber(limit) then return 0 end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = tonumber(window)
  end
  return ttl
end
local function count(key, window)
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, window) end
end
"""

# KEYS: phone counter. ARGV: limit, window ms, check only (1/0).
# Counts a start of the phone unless it is full; returns the wait (0: counted or room left).
_PHONE_START = (
    _WAIT_MS
    + """
local wait = wait_ms(KEYS[1], ARGV[1], ARGV[2])
if wait > 0 or ARGV[3] == '1' then return wait end
count(KEYS[1], ARGV[2])
return 0
"""
)

# KEYS: pending link, session counter. ARGV: limit, window ms, code ttl ms, link id, phone,
# digest. Refuses when the session's counter is full (its wait), else counts and stores.
_SESSION_START = (
    _WAIT_MS
    + """
local wait = wait_ms(KEYS[2], ARGV[1], ARGV[2])
if wait > 0 then return wait end
count(KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'link_id', ARGV[4], 'phone', ARGV[5], 'digest', ARGV[6],
  'attempts', 0, 'state', 'pending')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 0
"""
)


# Take one attempt before the code is compared, so parallel guesses cannot exceed the limit.
# A verified link (publish failed, client retries) is not charged again.
_RESERVE = """
local f = redis.call('HMGET', KEYS[1], 'link_id', 'phone', 'digest', 'attempts', 'state')
if not f[1] then return false end
local attempts = tonumber(f[4])
if f[5] ~= 'verified' then
  if attempts >= tonumber(ARGV[1]) then
    redis.call('DEL', KEYS[1])
    return false
  end
  attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
end
return {f[1], f[2], f[3], tostring(attempts), f[5]}
"""

_MARK_VERIFIED = """
if redis.call('HGET', KEYS[1], 'link_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'verified')
return 1
"""

_BURN = """
if redis.call('HGET', KEYS[1], 'link_id') == ARGV[1]
   and redis.call('HGET', KEYS[1], 'state') ~= 'verified' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Only the same link's pending record is removed (a newer start may have replaced it).
_DROP_PENDING = """
if redis.call('HGET', KEYS[1], 'link_id') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


@dataclass(frozen=True)
class LinkLimits:
    """Lifetimes and limits of link codes."""

    code_ttl_s: int = 600
    max_attempts: int = 5
    starts_per_session: int = 3
    starts_per_phone: int = 5
    rate_window_s: int = 3600


@dataclass(frozen=True)
class PendingLink:
    """A session's pending link as `reserve_attempt` found it (attempt already counted)."""

    link_id: str
    phone: str
    digest: str
    attempts: int
    verified: bool


class LinkStore:
    """Pending links, attempt counters, rate limits and the final mapping."""

    def __init__(self, redis: Redis, prefix: str, limits: LinkLimits) -> None:
        self._redis = redis
        self._prefix = prefix
        self.limits = limits
        self._phone_start = redis.register_script(_PHONE_START)
        self._session_start = redis.register_script(_SESSION_START)
        self._reserve = redis.register_script(_RESERVE)
        self._mark_verified = redis.register_script(_MARK_VERIFIED)
        self._burn = redis.register_script(_BURN)
        self._drop_pending = redis.register_script(_DROP_PENDING)

    def pending_key(self, session_id: str) -> str:
        return f"{self._prefix}:link:pending:{hash_tag(session_id)}"

    def session_starts_key(self, session_id: str) -> str:
        return f"{self._prefix}:link:starts:session:{hash_tag(session_id)}"

    def phone_starts_key(self, phone: str) -> str:
        return f"{self._prefix}:link:starts:phone:{phone}"

    async def start(self, session_id: str, phone: str, link_id: str, digest: str) -> int:
        """Store a new pending link (replacing any); 0, or the ms to wait when rate-limited.

        Three single-slot steps, since the phone's counter is shared by every session: ask
        the phone's counter, count on the session's side (storing the link), then count the
        phone. The session's step is the commit point, so a crash before it changes nothing
        and a crash after it at worst leaves one start uncounted for the phone. Concurrent
        starts of one phone may pass the check together and count past the limit by their
        number, as they may hit two windows; the limit is a rate guard, not a quota.
        """
        limits = self.limits
        window_ms = limits.rate_window_s * 1000
        phone_key = self.phone_starts_key(phone)
        phone_wait = int(
            await self._phone_start(keys=[phone_key], args=[limits.starts_per_phone, window_ms, 1])
        )
        session_wait = int(
            await self._session_start(
                keys=[self.pending_key(session_id), self.session_starts_key(session_id)],
                args=[
                    limits.starts_per_session,
                    window_ms,
                    limits.code_ttl_s * 1000,
                    link_id,
                    phone,
                    digest,
                ],
            )
            if phone_wait == 0
            else 0
        )
        if phone_wait or session_wait:
            return max(phone_wait, session_wait)
        await self._phone_start(keys=[phone_key], args=[limits.starts_per_phone, window_ms, 0])
        return 0

    async def reserve_attempt(self, session_id: str) -> PendingLink | None:
        """Count one attempt and return the pending link; None if there is none (any more)."""
        found = await self._reserve(
            keys=[self.pending_key(session_id)], args=[self.limits.max_attempts]
        )
        if not found:
            return None
        link_id, phone, digest, attempts, state = (str(value) for value in found)
        return PendingLink(link_id, phone, digest, int(attempts), state == "verified")

    async def mark_verified(self, session_id: str, link_id: str) -> bool:
        """Record that the code was right; False if the link was replaced or expired meanwhile."""
        done = await self._mark_verified(keys=[self.pending_key(session_id)], args=[link_id])
        return bool(done)

    async def burn(self, session_id: str, link_id: str) -> None:
        """Delete the pending link after its last wrong attempt (unless already verified)."""
        await self._burn(keys=[self.pending_key(session_id)], args=[link_id])

    async def finish(
        self, session_id: str, link_id: str, conversation_id: str, mapping_ttl_s: int
    ) -> None:
        """Map the chat session to `conversation_id` and drop the pending link.

        The mapping first (it is read by address, so on a cluster it lives in another slot
        than the pending link): the code was proven before this runs, so it is written even
        if the pending link expired meanwhile. A crash before the pending link is dropped
        leaves it `verified`; the client's retry finishes again without being charged.
        """
        await self._redis.set(
            identity_key(self._prefix, Channel.CHAT, session_id), conversation_id, ex=mapping_ttl_s
        )
        await self._drop_pending(keys=[self.pending_key(session_id)], args=[link_id])
