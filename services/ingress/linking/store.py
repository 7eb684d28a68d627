"""Link state in Redis. Every step is one Lua script, so concurrent requests cannot race.

- `link:pending:<session>`: hash `link_id, phone, digest, attempts, state` of the session's
  one pending link (a new start replaces it); expires with the code.
- `link:starts:session:<session>`, `link:starts:phone:<e164>`: fixed-window counters of
  link starts (rate limits).
- `identity:chat:<session>`: the explicit mapping the resolver honours, written on success.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.ingress.identity import identity_key
from shared.contracts import Channel

# Refuse when either counter is full (answer the longer wait), else count and store the link.
_START = """
local function wait_ms(key, limit)
  local used = tonumber(redis.call('GET', key) or '0')
  if used < tonumber(limit) then return 0 end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, ARGV[3])
    ttl = tonumber(ARGV[3])
  end
  return ttl
end
local wait = math.max(wait_ms(KEYS[2], ARGV[1]), wait_ms(KEYS[3], ARGV[2]))
if wait > 0 then return wait end
for i = 2, 3 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'link_id', ARGV[5], 'phone', ARGV[6], 'digest', ARGV[7],
  'attempts', 0, 'state', 'pending')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 0
"""

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

# The code was proven before this runs, so the mapping is written even if the pending link
# expired meanwhile; only the same link's pending record is removed.
_FINISH = """
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
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
        self._prefix = prefix
        self.limits = limits
        self._start = redis.register_script(_START)
        self._reserve = redis.register_script(_RESERVE)
        self._mark_verified = redis.register_script(_MARK_VERIFIED)
        self._burn = redis.register_script(_BURN)
        self._finish = redis.register_script(_FINISH)

    def pending_key(self, session_id: str) -> str:
        return f"{self._prefix}:link:pending:{session_id}"

    def session_starts_key(self, session_id: str) -> str:
        return f"{self._prefix}:link:starts:session:{session_id}"

    def phone_starts_key(self, phone: str) -> str:
        return f"{self._prefix}:link:starts:phone:{phone}"

    async def start(self, session_id: str, phone: str, link_id: str, digest: str) -> int:
        """Store a new pending link (replacing any); 0, or the ms to wait when rate-limited."""
        limits = self.limits
        wait_ms = await self._start(
            keys=[
                self.pending_key(session_id),
                self.session_starts_key(session_id),
                self.phone_starts_key(phone),
            ],
            args=[
                limits.starts_per_session,
                limits.starts_per_phone,
                limits.rate_window_s * 1000,
                limits.code_ttl_s * 1000,
                link_id,
                phone,
                digest,
            ],
        )
        return int(wait_ms)

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
        """Map the chat session to `conversation_id` and drop the pending link."""
        await self._finish(
            keys=[
                self.pending_key(session_id),
                identity_key(self._prefix, Channel.CHAT, session_id),
            ],
            args=[link_id, conversation_id, mapping_ttl_s],
        )
