"""`switchboard redis migrate-keys`: rename the keys of the pre-cluster layout to their
hash-tagged names, on one Redis node (docs/redis-cluster.md).

Redis Cluster support gave some keys a hash tag (`sb:memory:conv-1:turns` became
`sb:memory:{conv-1}:turns`), so that each multi-key script finds its keys in one slot. A
service of the new version reads only the new names: without this step an upgraded
deployment would start every conversation with an empty memory and forget pending chat
replies, pending links and recent dedupe records. (Fencing counters move too, though tokens
no longer depend on them alone: they never fall below Redis's clock in ms.)

Run it once, with every service stopped (drained), before starting the new version. It is
idempotent: a key already in the new form is left alone, so a second run changes nothing.
RENAME keeps a key's value and its expiry. A new-form key that already exists is never
overwritten (the old one is left and counted as a conflict), except fencing counters, which
keep the higher of the two values.

Some old keys do not say which conversation or session they belong to; where the value tells
(a processed record names its replies' conversation, an SMS ledger entry its message's sid
record, a chat outbox its replies), the key is moved, and otherwise it is left to expire. They
are dedupe records of messages already answered; after a drained stop Kafka redelivers none of
those, so nothing depends on them (docs/redis-cluster.md says what a leftover could allow).

It refuses a `redis+cluster://` URL: renaming is a single-node operation (a cluster cannot
rename a key into another slot). Migrate the single node first, then move the data into the
cluster (`redis-cli --cluster import`). Output is counts only: keys hold phone numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from services.common.redis import hash_tag, is_cluster_url, make_redis

# Moves a fencing counter: the new key keeps the higher value (it may exist already if the new
# version ran before the migration). KEYS: old, new.
_MOVE_FENCE = """
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(redis.call('GET', KEYS[2]) or '0')
if old > new then
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('SET', KEYS[2], tostring(old))
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
redis.call('DEL', KEYS[1])
return 1
"""

# Plain renames: (kind, pattern of the key after `<prefix>:`, new name from the match).
_RENAMES: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    ("lock fence", re.compile(r"lock:(.+):fence"), lambda m: f"lock:{hash_tag(m[1])}:fence"),
    ("lock wake", re.compile(r"lock:(.+):wake"), lambda m: f"lock:{hash_tag(m[1])}:wake"),
    ("lock", re.compile(r"lock:(.+)"), lambda m: f"lock:{hash_tag(m[1])}"),
    (
        "memory",
        re.compile(r"memory:(.+):(turns|overflow|summary)"),
        lambda m: f"memory:{hash_tag(m[1])}:{m[2]}",
    ),
    ("sms fence", re.compile(r"sms:fence:(.+)"), lambda m: f"sms:fence:{hash_tag(m[1])}"),
    ("chat seq", re.compile(r"chat:seq:(.+)"), lambda m: f"chat:seq:{hash_tag(m[1])}"),
    (
        "link pending",
        re.compile(r"link:pending:(.+)"),
        lambda m: f"link:pending:{hash_tag(m[1])}",
    ),
    (
        "link session starts",
        re.compile(r"link:starts:session:(.+)"),
        lambda m: f"link:starts:session:{hash_tag(m[1])}",
    ),
]
_FENCES = {"lock fence", "sms fence"}
_OUTBOX = re.compile(r"chat:outbox:(.+)")
_PROCESSED = re.compile(r"processed:(.+)")
_SMS_LEDGER = re.compile(r"sms:ledger:(.+)")
_CHAT_LEDGER = re.compile(r"chat:ledger:(.+)")
_CHAT_FENCE = re.compile(r"chat:fence:(.+)")


@dataclass
class MigrationReport:
    """What a run did, by kind of key (counts only)."""

    renamed: Counter[str]
    conflicts: Counter[str]
    left: Counter[str]
    """Old keys that name no conversation or session: left to expire."""
    dry_run: bool

    def lines(self) -> list[str]:
        verb = "would rename" if self.dry_run else "renamed"
        out = [f"{verb} {n} {kind} key(s)" for kind, n in sorted(self.renamed.items())]
        out += [
            f"left {n} {kind} key(s): the new name exists (kept, not overwritten)"
            for kind, n in sorted(self.conflicts.items())
        ]
        out += [
            f"left {n} {kind} key(s) to expire: they name no conversation or session"
            for kind, n in sorted(self.left.items())
        ]
        return out or ["nothing to migrate"]


class KeyMigration:
    """One pass over a single node's keys of one prefix."""

    def __init__(self, redis: Redis, prefix: str, dry_run: bool = False) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("a Redis prefix must not contain braces (hash tags)")
        self._redis = redis
        self._prefix = prefix
        self._report = MigrationReport(Counter(), Counter(), Counter(), dry_run)
        self._move_fence = redis.register_script(_MOVE_FENCE)

    async def run(self) -> MigrationReport:
        """Scan every `<prefix>:*` key once and move the old-form ones."""
        # SCAN returns every key that exists for the whole scan at least once; renamed keys
        # may show up again under their new names and are skipped (they hold a `{`).
        async for key in self._redis.scan_iter(match=f"{_escape(self._prefix)}:*", count=1000):
            rest = str(key)[len(self._prefix) + 1 :]
            if "{" not in rest:
                await self._migrate(rest)
        return self._report

    async def _migrate(self, rest: str) -> None:
        for kind, pattern, new_form in _RENAMES:
            if match := pattern.fullmatch(rest):
                await self._move(kind, rest, new_form(match))
                return
        if match := _OUTBOX.fullmatch(rest):
            await self._move_outbox(rest, match[1])
        elif match := _PROCESSED.fullmatch(rest):
            await self._by_value(
                "processed", rest, self._processed_conversation, f"processed:{{}}:{match[1]}"
            )
        elif match := _SMS_LEDGER.fullmatch(rest):
            await self._by_value(
                "sms ledger", rest, self._sms_conversation, f"sms:ledger:{{}}:{match[1]}"
            )
        elif _CHAT_LEDGER.fullmatch(rest):
            # Moved with its session's outbox while the reply waits there; a sent reply's
            # mark names no session.
            await self._left_unless_moved("chat ledger", rest)
        elif _CHAT_FENCE.fullmatch(rest):
            # Now kept per session and conversation: a new one starts empty (accepts any
            # token) while the brain's lock counters, moved above, keep growing.
            self._report.left["chat fence"] += 1

    async def _move(self, kind: str, rest: str, new_rest: str) -> None:
        old, new = f"{self._prefix}:{rest}", f"{self._prefix}:{new_rest}"
        if self._report.dry_run:
            self._report.renamed[kind] += 1
        elif kind in _FENCES:
            await self._move_fence(keys=[old, new])
            self._report.renamed[kind] += 1
        elif await self._redis.renamenx(old, new):
            self._report.renamed[kind] += 1
        elif await self._redis.exists(old):
            self._report.conflicts[kind] += 1

    async def _move_outbox(self, rest: str, session_id: str) -> None:
        for reply_id in map(str, await self._redis.hkeys(f"{self._prefix}:{rest}")):
            ledger = f"chat:ledger:{reply_id}"
            if await self._redis.exists(f"{self._prefix}:{ledger}"):
                await self._move(
                    "chat ledger", ledger, f"chat:ledger:{hash_tag(session_id)}:{reply_id}"
                )
        await self._move("chat outbox", rest, f"chat:outbox:{hash_tag(session_id)}")

    async def _by_value(
        self,
        kind: str,
        rest: str,
        owner: Callable[[str], Awaitable[str | None]],
        new_form: str,
    ) -> None:
        conversation = await owner(f"{self._prefix}:{rest}")
        if conversation:
            await self._move(kind, rest, new_form.format(hash_tag(conversation)))
        else:
            self._report.left[kind] += 1

    async def _left_unless_moved(self, kind: str, rest: str) -> None:
        if await self._redis.exists(f"{self._prefix}:{rest}"):
            self._report.left[kind] += 1

    async def _processed_conversation(self, key: str) -> str | None:
        # The record holds the turn's outcome: its replies name their conversation.
        try:
            outcome = json.loads(await self._redis.get(key) or "{}")
        except ValueError:
            return None
        for reply in outcome.get("replies", []) if isinstance(outcome, dict) else []:
            if isinstance(reply, dict) and reply.get("conversation_id"):
                return str(reply["conversation_id"])
        return None

    async def _sms_conversation(self, key: str) -> str | None:
        # A sent reply's entry names its Twilio message, whose record names the conversation.
        sid = await self._redis.hget(key, "sid")
        if not sid:
            return None
        conversation = await self._redis.hget(f"{self._prefix}:sms:sid:{sid!s}", "conversation_id")
        return str(conversation) if conversation else None


def _escape(text: str) -> str:
    """`text` as a literal in a SCAN MATCH glob."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


async def migrate_keys(url: str, prefix: str, dry_run: bool = False) -> MigrationReport:
    """Rename the old-form keys of `prefix` on the single node at `url`."""
    if is_cluster_url(url):
        raise ValueError(
            "migrate-keys renames keys on one node; run it against the single node before "
            "moving its data into a cluster (docs/redis-cluster.md)"
        )
    redis = make_redis(url)
    try:
        return await KeyMigration(redis, prefix, dry_run).run()
    finally:
        await redis.aclose()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `switchboard redis` subcommands."""
    actions = parser.add_subparsers(dest="redis_action", required=True)
    migrate = actions.add_parser(
        "migrate-keys",
        help="rename pre-cluster keys to their hash-tagged names (services stopped; idempotent)",
    )
    migrate.add_argument("--dry-run", action="store_true", help="count, rename nothing")


def run(args: argparse.Namespace, url: str, prefix: str) -> int:
    """Run `switchboard redis <action>`; the exit status."""
    try:
        report = asyncio.run(migrate_keys(url, prefix, dry_run=args.dry_run))
    except ValueError as exc:
        print(f"refused: {exc}")
        return 2
    for line in report.lines():
        print(line)
    return 0
