"""SMS state in Redis, shared by ingress (keywords, status callbacks) and egress (sending).

- Consent: `sms:optout:<e164>` exists while a number has opted out (STOP, or Twilio's 21610).
  No expiry: only START/YES/UNSTOP ends it. `sms:badnumber:<e164>` marks numbers Twilio
  called undeliverable (21211/21614/21635), for `bad_number_ttl_s`.
- Delivery ledger: `sms:ledger:{<conversation>}:<reply_id>` records the send intent before
  Twilio is called and Twilio's `sid` after, so a redelivered reply never becomes a second SMS
  (see `claim`). `sms:fence:{<conversation>}` is the highest fencing token accepted for the
  conversation. Both carry the conversation as hash tag: `claim` checks them in one script,
  so on Redis Cluster they must share a slot.
- Message status: `sms:sid:<sid>` holds the reply a Twilio message carries and its delivery
  state, which only moves forward (status callbacks arrive out of order).

Consent keys are used one at a time (two independent flags read in one pipeline), so they
carry no hash tag and kept their names across the cluster change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from services.common.redis import hash_tag
from services.common.redis_replicas import ReplicatedWrites
from shared.contracts import DeliveryStatus

# KEYS: ledger entry, conversation fence. ARGV: owner, now ms, lease ms, fence or '', ttl s.
# States: sending (intent recorded, outcome unknown until `sent`), sent, suppressed (never to
# be sent: opted out, bad number), unsent (definitely not sent; may be tried again).
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'sent' or state == 'suppressed' then
  return {'done', state}
end
local now = tonumber(ARGV[2])
if state == 'sending' then
  local owner = redis.call('HGET', KEYS[1], 'owner')
  local claimed = tonumber(redis.call('HGET', KEYS[1], 'claimed_ms') or '0')
  if owner ~= ARGV[1] and now - claimed < tonumber(ARGV[3]) then
    return {'busy', tostring(claimed + tonumber(ARGV[3]) - now)}
  end
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'claimed_ms', ARGV[2])
  return {'unknown', redis.call('HGET', KEYS[1], 'intent_ms')}
end
if state == false and ARGV[4] ~= '' then
  local highest = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tonumber(ARGV[4]) < highest then return {'stale', tostring(highest)} end
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
end
redis.call('HSET', KEYS[1], 'state', 'sending', 'owner', ARGV[1], 'claimed_ms', ARGV[2],
  'intent_ms', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {'new', ARGV[2]}
"""

# KEYS: sid record. ARGV: reply id, conversation id, rank, status, ttl s.
# A status callback may have beaten us to the sid record: keep its (later) state.
_RECORD_SID = """
redis.call('HSET', KEYS[1], 'reply_id', ARGV[1], 'conversation_id', ARGV[2])
local rank = tonumber(redis.call('HGET', KEYS[1], 'rank') or '-1')
if tonumber(ARGV[3]) > rank then
  redis.call('HSET', KEYS[1], 'rank', ARGV[3], 'status', ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return redis.call('HGET', KEYS[1], 'status')
"""

# KEYS: sid record. ARGV: rank, status, error code or '', ttl s.
_ADVANCE = """
local rank = tonumber(redis.call('HGET', KEYS[1], 'rank') or '-1')
local reply = redis.call('HGET', KEYS[1], 'reply_id') or ''
local conversation = redis.call('HGET', KEYS[1], 'conversation_id') or ''
if tonumber(ARGV[1]) <= rank then return {0, reply, conversation} end
redis.call('HSET', KEYS[1], 'rank', ARGV[1], 'status', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error_code', ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, reply, conversation}
"""

_TWILIO_STATUS = {
    "accepted": DeliveryStatus.ACCEPTED,
    "scheduled": DeliveryStatus.ACCEPTED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "partially_delivered": DeliveryStatus.UNDELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
    "read": DeliveryStatus.READ,
}


def delivery_status(twilio_status: str) -> DeliveryStatus | None:
    """Our delivery state for one of Twilio's message statuses (None: not an outbound state)."""
    return _TWILIO_STATUS.get(twilio_status.strip().lower())


class SmsConsent:
    """Opt-outs and undeliverable numbers, honoured by every egress instance."""

    def __init__(self, redis: Redis, prefix: str, bad_number_ttl_s: int = 30 * 24 * 3600) -> None:
        self._redis = redis
        self._prefix = prefix
        self.bad_number_ttl_s = bad_number_ttl_s

    def _key(self, kind: str, number: str) -> str:
        return f"{self._prefix}:sms:{kind}:{number}"

    async def opt_out(self, number: str, source: str) -> None:
        """Record that `number` must not be texted (`source`: keyword or Twilio code)."""
        await self._redis.set(self._key("optout", number), f"{source}@{int(time.time())}")

    async def opt_in(self, number: str) -> bool:
        """Lift an opt-out; True when there was one. Also forgets a bad-number mark."""
        # One DEL per key, not one DEL of both: the keys may live in different cluster slots.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._key("optout", number))
            pipe.delete(self._key("badnumber", number))
            removed = await pipe.execute()
        return bool(removed[0])

    async def mark_bad(self, number: str, code: int) -> None:
        """Twilio called `number` undeliverable; stop trying it for a while."""
        await self._redis.set(self._key("badnumber", number), str(code), ex=self.bad_number_ttl_s)

    async def blocked(self, number: str) -> str | None:
        """Why `number` must not be texted now (`opted_out`, `bad_number:<code>`), or None."""
        # Two GETs, not MGET: the keys may live in different cluster slots.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._key("optout", number))
            pipe.get(self._key("badnumber", number))
            opted_out, bad = await pipe.execute()
        if opted_out is not None:
            return "opted_out"
        if bad is not None:
            code = bad.decode() if isinstance(bad, bytes) else str(bad)
            return f"bad_number:{code}"
        return None


class ClaimKind(StrEnum):
    """What `SmsLedger.claim` found for a reply."""

    NEW = "new"
    """Never tried: the intent is now recorded, send it."""
    UNKNOWN = "unknown"
    """An earlier attempt may have reached Twilio: look it up before sending again."""
    DONE = "done"
    """Already sent (or suppressed for good): drop the duplicate."""
    BUSY = "busy"
    """Another egress instance is sending it right now: wait and claim again."""
    STALE = "stale"
    """Fenced below a reply already accepted for the conversation: refuse it."""


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim, with the time of the first send intent or the wait."""

    kind: ClaimKind
    detail: str

    @property
    def intent_ms(self) -> int:
        """When the first attempt was recorded (NEW / UNKNOWN)."""
        return int(self.detail)


class SmsLedger:
    """The egress delivery ledger of SMS replies, and the status of sent messages."""

    def __init__(
        self, redis: Redis, prefix: str, *, lease_ms: int = 30_000, ttl_s: int = 7 * 24 * 3600
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.lease_ms = lease_ms
        self.ttl_s = ttl_s
        self._claim = redis.register_script(_CLAIM)
        self._record_sid = redis.register_script(_RECORD_SID)
        self._advance = redis.register_script(_ADVANCE)
        self._replicated = ReplicatedWrites(redis)

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, "sms", *parts))

    def ledger_key(self, conversation_id: str, reply_id: str) -> str:
        """The ledger entry of one reply, in its conversation's hash slot."""
        return self._key("ledger", hash_tag(conversation_id), reply_id)

    def fence_key(self, conversation_id: str) -> str:
        """The highest fencing token accepted for the conversation."""
        return self._key("fence", hash_tag(conversation_id))

    def sid_key(self, sid: str) -> str:
        """The status record of one Twilio message (looked up by sid alone)."""
        return self._key("sid", sid)

    async def claim(
        self, reply_id: str, conversation_id: str, owner: str, fence: int | None
    ) -> Claim:
        """Record the intent to send `reply_id` (atomically with the dedupe and fence checks).

        The intent survives a crash: whoever claims the reply next gets `UNKNOWN` and must
        ask Twilio whether the message went out before sending it again. `owner` (the
        instance id) lets our own retry skip the lease another instance would wait out.
        """
        # On a cluster, the intent is on a replica before Twilio is called: a failover that
        # lost it would let a redelivered reply be texted a second time.
        kind, detail = await self._replicated.run(
            self._claim,
            [self.ledger_key(conversation_id, reply_id), self.fence_key(conversation_id)],
            [
                owner,
                int(time.time() * 1000),
                self.lease_ms,
                "" if fence is None else fence,
                self.ttl_s,
            ],
        )
        return Claim(ClaimKind(_text(kind)), _text(detail))

    async def record_sent(
        self, reply_id: str, conversation_id: str, sid: str, status: DeliveryStatus
    ) -> DeliveryStatus:
        """Twilio accepted `reply_id` as message `sid`. Returns the message's latest state.

        Two single-slot steps (the sid record is found by sid alone, the ledger entry by
        conversation, so on a cluster they cannot share a slot): the sid record first, then
        the ledger entry, which is the commit point. A crash between the two leaves the entry
        `sending`, so the next claim gets `UNKNOWN` and finds the message at Twilio instead of
        sending it again; the other order could leave a sent SMS whose status callbacks name
        no reply.
        """
        latest = await self._record_sid(
            keys=[self.sid_key(sid)],
            args=[reply_id, conversation_id, status.rank, status.value, self.ttl_s],
        )
        await self._redis.hset(
            self.ledger_key(conversation_id, reply_id), mapping={"state": "sent", "sid": sid}
        )
        return DeliveryStatus(_text(latest))

    async def mark_unsent(self, reply_id: str, conversation_id: str) -> None:
        """Twilio certainly did not take the message (an error answer): it may be tried again."""
        await self._redis.hset(self.ledger_key(conversation_id, reply_id), "state", "unsent")

    async def suppress(self, reply_id: str, conversation_id: str, reason: str) -> None:
        """This reply must never be sent (opted out, bad number)."""
        await self._redis.hset(
            self.ledger_key(conversation_id, reply_id),
            mapping={"state": "suppressed", "reason": reason},
        )

    async def sid_owner(self, sid: str) -> str | None:
        """The reply a Twilio message was recorded for, if any."""
        value = await self._redis.hget(self.sid_key(sid), "reply_id")
        return _text(value) if value else None

    async def advance_status(
        self, sid: str, status: DeliveryStatus, error_code: str | None
    ) -> tuple[bool, str | None, str | None]:
        """Move message `sid` forward to `status`; never back (e.g. from `delivered`).

        Returns whether it moved, and the reply and conversation it belongs to when known.
        """
        moved, reply_id, conversation_id = await self._advance(
            keys=[self.sid_key(sid)],
            args=[status.rank, status.value, error_code or "", self.ttl_s],
        )
        return bool(int(moved)), _text(reply_id) or None, _text(conversation_id) or None

    async def status_of(self, sid: str) -> dict[str, str]:
        """The stored state of message `sid` (for tests and operators)."""
        raw = await self._redis.hgetall(self.sid_key(sid))
        return {_text(key): _text(value) for key, value in raw.items()}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
