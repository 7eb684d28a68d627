"""What ingress and egress know about live VAPI calls, shared through Redis.

- `vapi:call:<call id>` (hash): `conversation_id`, `caller`, `control_url`, `ended`,
  `ended_reason`, and egress's `speaking_until_ms` (when the sentences it handed over should
  have been spoken, an estimate: the call is not ended before). Written by whoever learns a
  field first (events, the LLM route).
- `vapi:event:<key>`: a server-URL event already handled (VAPI may retry: dedupe on
  call id, type and timestamp).
- `vapi:throttle:<name>`: set for a short window after a barge-in signal of a call.
- `vapi:stream:<correlation id>`: the ingress instance holding the custom-LLM request that
  streams this answer. Egress reads it for every part, so a retried request held by another
  instance gets the parts of the same turn.
- `vapi:streaming:<call id>`: a custom-LLM stream of the call is in flight (the correlation
  id). Egress sends no Live Call Control message while it is set: VAPI is reported to break
  the stream when one arrives mid-stream.
- `vapi:done:<reply id>`: a control action (end-call, say) egress carried out;
  `vapi:fence:<call id>`: the highest fencing token egress has accepted for the call.

Records expire a day after their last write; a conversation's memory lives in the brain.
No operation here touches two keys atomically, so the keys carry no Redis Cluster hash tag.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.common.redis import HSET_EXPIRE, hset_expire

CALL_TTL_S = 24 * 3600
EVENT_TTL_S = 3600

# Delete the key only if it still holds our value: a newer stream of the call is not ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: call. ARGV: now ms, speech ms, ttl s. The call speaks until then, after what it already had.
_ADD_SPEECH = """
local ends = tonumber(redis.call('HGET', KEYS[1], 'speaking_until_ms') or '0')
if ends < tonumber(ARGV[1]) then ends = tonumber(ARGV[1]) end
ends = ends + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'speaking_until_ms', ends)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return ends
"""
# Accept a fence unless a higher one was seen: 1 accepted, 0 stale.
_FENCE = """
local seen = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) < seen then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class VapiCall:
    """One VAPI call as far as Switchboard knows it."""

    call_id: str
    conversation_id: str = ""
    caller: str = ""
    control_url: str = ""
    ended: bool = False
    ended_reason: str = ""
    speaking_until_ms: int = 0
    """Egress's estimate of when what it handed over has been spoken (epoch ms)."""


class VapiCalls:
    """The call records, event dedupe, stream holders and control-action ledger."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._hset_expire = redis.register_script(HSET_EXPIRE)

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, "vapi", *parts))

    async def get(self, call_id: str) -> VapiCall:
        """The call's record (empty fields when nothing is known yet)."""
        fetched = await self._redis.hgetall(self._key("call", call_id))
        raw = {str(k): str(v) for k, v in fetched.items()}
        return VapiCall(
            call_id=call_id,
            conversation_id=raw.get("conversation_id", ""),
            caller=raw.get("caller", ""),
            control_url=raw.get("control_url", ""),
            ended=raw.get("ended") == "1",
            ended_reason=raw.get("ended_reason", ""),
            speaking_until_ms=int(float(raw.get("speaking_until_ms") or 0)),
        )

    async def remember(self, call_id: str, **fields: str) -> None:
        """Store the non-empty `fields` (conversation_id, caller, control_url)."""
        values = {name: value for name, value in fields.items() if value}
        if not values:
            return
        await hset_expire(self._hset_expire, self._key("call", call_id), values, CALL_TTL_S)

    async def add_speech(self, call_id: str, now_ms: int, speech_ms: int) -> int:
        """The call speaks `speech_ms` more, after what it already had; returns until when."""
        until = await self._redis.eval(
            _ADD_SPEECH, 1, self._key("call", call_id), now_ms, speech_ms, CALL_TTL_S
        )
        return int(until)

    async def mark_ended(self, call_id: str, reason: str) -> None:
        """The call is over (status-update `ended`, end-of-call-report)."""
        await self.remember(call_id, ended="1", ended_reason=reason or "unknown")

    async def first_time(self, event_key: str) -> bool:
        """True once per event key: VAPI may deliver an event again."""
        key = self._key("event", event_key)
        return bool(await self._redis.set(key, "1", nx=True, ex=EVENT_TTL_S))

    async def forget_event(self, event_key: str) -> None:
        """Undo `first_time`: handling the event failed (Kafka did not ack), so its retry
        must be handled again."""
        await self._redis.delete(self._key("event", event_key))

    async def throttle(self, name: str, window_ms: int) -> bool:
        """True at most once per `window_ms` for `name` (barge-in signals of a call)."""
        key = self._key("throttle", name)
        return bool(await self._redis.set(key, "1", nx=True, px=window_ms))

    async def release_throttle(self, name: str) -> None:
        """Undo `throttle`: the signal it let through was not published after all."""
        await self._redis.delete(self._key("throttle", name))

    # -- custom-LLM streams ------------------------------------------------------------------

    async def hold_stream(
        self, correlation_id: str, call_id: str, instance_id: str, ttl_s: float
    ) -> None:
        """This instance streams `correlation_id` for `call_id` for at most `ttl_s`."""
        ttl_ms = max(1, int(ttl_s * 1000))
        # Not a transaction: the two keys are found by different ids (a correlation id, a
        # call), so on Redis Cluster they may live in different slots. Nothing needs them
        # atomic: both expire together, and egress reads them only for parts of the stream
        # this request publishes after they are written.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key("stream", correlation_id), instance_id, px=ttl_ms)
            pipe.set(self._key("streaming", call_id), correlation_id, px=ttl_ms)
            await pipe.execute()

    async def holder_of(self, correlation_id: str) -> str | None:
        """The instance streaming `correlation_id` now, if any."""
        holder = await self._redis.get(self._key("stream", correlation_id))
        return str(holder) if holder else None

    async def release_stream(self, correlation_id: str, call_id: str) -> None:
        """The stream is over: control messages may be sent again."""
        await self._redis.eval(_RELEASE, 1, self._key("streaming", call_id), correlation_id)

    async def streaming(self, call_id: str) -> bool:
        """A custom-LLM stream of the call is in flight."""
        return bool(await self._redis.exists(self._key("streaming", call_id)))

    # -- egress: control actions once, fenced -------------------------------------------------

    async def accept_fence(self, call_id: str, fence: int | None) -> bool:
        """False when a reply of a newer lock holder was already accepted for the call."""
        if fence is None:
            return True
        key = self._key("fence", call_id)
        return bool(await self._redis.eval(_FENCE, 1, key, fence, CALL_TTL_S))

    async def done(self, reply_id: str, step: str) -> bool:
        """Whether `step` of `reply_id` was carried out already."""
        return bool(await self._redis.exists(self._key("done", reply_id, step)))

    async def mark_done(self, reply_id: str, step: str) -> None:
        """Record that `step` of `reply_id` was carried out."""
        await self._redis.set(self._key("done", reply_id, step), "1", ex=CALL_TTL_S)
