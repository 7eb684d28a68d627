"""The echo channel's outbound adapter: each reply is written once to its user's outbox in
Redis, where the tests read what was delivered, in delivery order.

Idempotent per `reply_id`: the "seen" set and the outbox are written by one Lua script, so a
redelivered reply (egress retried, the brain answered a retry again) is never listed twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from services.channels.sdk.plugin import NoBackgroundWork
from services.common.ops import OpsEmitter
from shared.contracts import Lifecycle, Reply, ReplyKind
from tests.support.echo_channel.profile import NAME

OUTBOX_TTL_S = 24 * 3600

# KEYS: seen set, outbox list. ARGV: reply id, entry, ttl. 1 if recorded, 0 if seen before.
_RECORD_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Delivered:
    """One reply as the echo user received it."""

    reply_id: str
    in_reply_to: str
    conversation_id: str
    text: str


class EchoOutbox:
    """Per-user outboxes under `<prefix>:echo:`."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._record = redis.register_script(_RECORD_ONCE)

    def _keys(self, user: str) -> list[str]:
        # One hash tag (the user) for both: the recording script touches both keys, and on
        # Redis Cluster a script's keys must share a slot.
        tag = "{" + user + "}"
        return [f"{self._prefix}:{NAME}:seen:{tag}", f"{self._prefix}:{NAME}:outbox:{tag}"]

    async def record(self, user: str, entry: Delivered) -> bool:
        """Append `entry` to `user`'s outbox unless its reply id is already there."""
        recorded = await self._record(
            keys=self._keys(user),
            args=[entry.reply_id, json.dumps(asdict(entry)), OUTBOX_TTL_S],
        )
        return bool(recorded)

    async def read(self, user: str) -> list[Delivered]:
        """Everything delivered to `user`, oldest first."""
        raw: list[str] = await self._redis.lrange(self._keys(user)[1], 0, -1)
        return [Delivered(**json.loads(item)) for item in raw]


class EchoOutput(NoBackgroundWork):
    """Delivers replies of the echo channel into the outbox."""

    channel = NAME

    def __init__(self, outbox: EchoOutbox, ops: OpsEmitter) -> None:
        self._outbox = outbox
        self._ops = ops

    async def deliver(self, reply: Reply) -> None:
        if reply.kind is not ReplyKind.MESSAGE:
            return  # call control: a text channel has no call to open, close or stop
        entry = Delivered(
            reply_id=reply.reply_id,
            in_reply_to=reply.in_reply_to.removeprefix(f"{reply.address}:"),
            conversation_id=reply.conversation_id,
            text=reply.text,
        )
        recorded = await self._outbox.record(reply.address, entry)
        await self._ops.emit(
            Lifecycle.DELIVERED if recorded else Lifecycle.DEDUPED,
            channel=NAME,
            conversation_id=reply.conversation_id,
            reply_id=reply.reply_id,
        )
