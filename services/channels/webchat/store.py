"""Web chat delivery state in Redis, shared by egress (writer) and ingress (socket holder).

- `holder:<session>`: the ingress instance holding the session's WebSocket (expiring lease,
  refreshed by the holder's heartbeat).
- `outbox:{<session>}`: replies not yet written to a socket, by `reply_id`. The record of
  truth: a reply stays here until a holder has sent it, so a closed browser gets it on
  reconnect and a crashed ingress instance loses nothing. Holders read it with `pending`
  and remove only what they sent with `acknowledge`: a drain cut short by Redis going away
  (the reply to a destructive read lost in a restart) sends a reply twice, never zero times.
- `ledger:{<session>}:<reply_id>`: egress has accepted this reply once; a redelivered reply
  is dropped. `seq:{<session>}` numbers the session's replies; `fence:{<session>}:<conversation>`
  is the highest fencing token accepted for the conversation's replies to this session.

Everything `put_reply` touches carries the session as its Redis Cluster hash tag, so the one
script runs in one slot. The fence is therefore kept per session and conversation, not per
conversation alone: a stale worker's reply is refused when a newer reply of the conversation
already reached *this* session (one session per conversation is the normal case; after a link
the conversation's tokens are compared only with its own).

Ordering argument (why no reply is stranded): egress writes the outbox *before* it reads the
holder; ingress sets the holder *before* it drains the outbox. Redis runs commands one at a
time, so either egress sees the holder and rings its inbox, or the holder's drain sees the
reply.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from services.common.redis import HSET_EXPIRE, hash_tag, hset_expire, queue_script
from services.common.redis_replicas import ReplicatedWrites

# KEYS: ledger, outbox, fence, sequence. ARGV: reply id, reply json, ledger ttl, outbox ttl,
# fence ('' if none). The fence is the brain's lock token: a reply older than one already
# accepted for the conversation comes from a worker that lost its lock, and is refused. The
# session's sequence numbers the replies in the order egress stored them, so replies stored
# in the same millisecond (a backlog draining after an outage) still go out in order.
_PUT_REPLY = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'pending' end
  return 'done'
end
if ARGV[5] ~= '' then
  local highest = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tonumber(ARGV[5]) < highest then return 'stale' end
  redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[4])
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])
local reply = cjson.decode(ARGV[2])
reply['seq'] = redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(reply))
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 'new'
"""

_TAKE_ALL = """
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
"""

# Refresh a lease unless another instance took the session over (a newer socket elsewhere).
_REFRESH_HOLDER = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 0
"""

_RELEASE_HOLDER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PutResult(StrEnum):
    """What `ChatStore.put_reply` found."""

    NEW = "new"
    """First time: stored in the outbox."""
    PENDING = "pending"
    """Seen before and still waiting for a socket (ring the holder again)."""
    DONE = "done"
    """Seen before and already sent: a duplicate, drop it."""
    STALE = "stale"
    """Emitted under an older lock token than a reply already accepted: refused."""


@dataclass(frozen=True)
class PendingReply:
    """A reply waiting in a session's outbox."""

    reply_id: str
    conversation_id: str
    in_reply_to: str | None
    text: str
    created_ms: int
    seq: int = 0
    """Position in the session's outbox, given when stored (0: stored before sequences)."""

    @property
    def order(self) -> tuple[int, int, str]:
        """Sort key: when egress stored the reply, then the order it stored them in (replies
        stored within one millisecond, as a backlog drains, keep their order)."""
        return (self.created_ms, self.seq, self.reply_id)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, raw: str) -> PendingReply:
        return cls(**json.loads(raw))


class ChatStore:
    """Outbox, holder lease and delivery ledger of web chat sessions."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        outbox_ttl_s: int = 7 * 24 * 3600,
        holder_ttl_s: int = 60,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.outbox_ttl_s = outbox_ttl_s
        self.holder_ttl_s = holder_ttl_s
        self._put = redis.register_script(_PUT_REPLY)
        self._take_all = redis.register_script(_TAKE_ALL)
        self._refresh = redis.register_script(_REFRESH_HOLDER)
        self._release = redis.register_script(_RELEASE_HOLDER)
        self._hset_expire = redis.register_script(HSET_EXPIRE)
        self._replicated = ReplicatedWrites(redis)

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, "chat", *parts))

    def outbox_key(self, session_id: str) -> str:
        """The session's outbox (hash of reply id to reply)."""
        return self._key("outbox", hash_tag(session_id))

    def ledger_key(self, session_id: str, reply_id: str) -> str:
        """The mark of a reply accepted once, in its session's hash slot."""
        return self._key("ledger", hash_tag(session_id), reply_id)

    def holder_key(self, session_id: str) -> str:
        """The lease of the instance holding the session's socket (used alone: no tag)."""
        return self._key("holder", session_id)

    async def put_reply(
        self, session_id: str, reply: PendingReply, fence: int | None = None
    ) -> PutResult:
        """Store a reply for delivery, once per `reply_id` (atomic with the ledger).

        `fence` is the brain's conversation lock token (`Reply.fence`); replies fenced below
        the highest already accepted for the conversation are refused as `STALE`.
        """
        # On a cluster, the reply is on a replica before egress commits its offset: the
        # outbox is the record of truth, and a failover must not lose it.
        result = await self._replicated.run(
            self._put,
            [
                self.ledger_key(session_id, reply.reply_id),
                self.outbox_key(session_id),
                self._key("fence", hash_tag(session_id), reply.conversation_id),
                self._key("seq", hash_tag(session_id)),
            ],
            [
                reply.reply_id,
                reply.to_json(),
                self.outbox_ttl_s,
                self.outbox_ttl_s,
                "" if fence is None else fence,
            ],
        )
        return PutResult(result)

    async def take_pending(self, session_id: str) -> list[PendingReply]:
        """Remove and return every waiting reply, oldest first. Put back what you fail to send.

        Ingress no longer drains with this: if Redis stops right after running it, the reply to
        it is lost and the replies with it. Use `pending` + `acknowledge`."""
        flat = await self._take_all(keys=[self.outbox_key(session_id)])
        replies = [PendingReply.from_json(raw) for raw in flat[1::2]]
        return sorted(replies, key=lambda reply: reply.order)

    async def pending(self, session_id: str) -> list[PendingReply]:
        """Every waiting reply, oldest first, left in the outbox until `acknowledge`."""
        raw = await self._redis.hvals(self.outbox_key(session_id))
        replies = [PendingReply.from_json(str(item)) for item in raw]
        return sorted(replies, key=lambda reply: reply.order)

    async def sessions_with_pending(self, session_ids: list[str]) -> list[str]:
        """The sessions among `session_ids` whose outbox holds a reply (one round trip)."""
        if not session_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.hlen(self.outbox_key(session_id))
            counts = await pipe.execute()
        return [session for session, count in zip(session_ids, counts, strict=True) if count]

    async def acknowledge(self, session_id: str, reply_ids: list[str]) -> None:
        """Remove replies that were written to the session's socket."""
        if reply_ids:
            await self._redis.hdel(self.outbox_key(session_id), *reply_ids)

    async def restore(self, session_id: str, replies: list[PendingReply]) -> None:
        """Put back replies that could not be sent (the socket closed mid-drain)."""
        if not replies:
            return
        mapping = {reply.reply_id: reply.to_json() for reply in replies}
        await hset_expire(
            self._hset_expire, self.outbox_key(session_id), mapping, self.outbox_ttl_s
        )

    async def claim_holder(self, session_id: str, instance_id: str) -> None:
        """Record that `instance_id` now holds the session's socket (the newest wins)."""
        await self._redis.set(self.holder_key(session_id), instance_id, ex=self.holder_ttl_s)

    async def refresh_holders(self, session_ids: list[str], instance_id: str) -> None:
        """Heartbeat: keep this instance's leases alive, never taking one back."""
        if not session_ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                await queue_script(
                    pipe,
                    self._refresh,
                    [self.holder_key(session_id)],
                    [instance_id, self.holder_ttl_s],
                )
            await pipe.execute()

    async def release_holder(self, session_id: str, instance_id: str) -> None:
        """Drop the lease if it is still ours (another instance may hold it now)."""
        await self._release(keys=[self.holder_key(session_id)], args=[instance_id])

    async def holder(self, session_id: str) -> str | None:
        """The instance holding the session's socket, if any."""
        value = await self._redis.get(self.holder_key(session_id))
        return str(value) if value is not None else None


def now_ms() -> int:
    """Wall-clock milliseconds, for outbox ordering."""
    return int(time.time() * 1000)
