"""What a run's keys cost in Redis: `INFO memory`, and every key of the prefix by kind.

Two views that should agree: `used_memory` minus a baseline taken before the run (what the
server really allocated, including its per-key bookkeeping), and the sum of `MEMORY USAGE`
over every key of the prefix (SCAN, then one pipelined `MEMORY USAGE ... SAMPLES 0` per key,
exact for lists). The second says which key kinds the bytes belong to.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from redis.asyncio import Redis

# `<prefix>:<kind>:{<conversation>}[:<part>]`, see services/brain/memory.py and locks.py.
# The braces (a Redis Cluster hash tag) are optional so that either key layout is read.
_KEY = re.compile(
    r"^(?P<family>memory|processed|lock):\{?(?P<conv>conv_[0-9a-f]+)\}?(?::(?P<part>.*))?$"
)
_INFO_FIELDS = ("used_memory", "used_memory_dataset", "mem_clients_normal", "connected_clients")


def key_kind(suffix: str) -> tuple[str, str | None]:
    """(kind, conversation) of a key without its prefix, e.g. ("memory:turns", "conv_…")."""
    match = _KEY.match(suffix)
    if match is None:
        return suffix.split(":", 1)[0] or "other", None
    family, conv, part = match["family"], match["conv"], match["part"]
    if family == "processed":
        return "processed", conv  # part is the message's dedupe key
    if family == "lock":
        return ("lock" if part is None else f"lock:{part}"), conv
    return f"memory:{part}", conv


@dataclass
class KindStats:
    """Every key of one kind: how many, their bytes, one TTL seen, list lengths and sizes."""

    keys: int = 0
    bytes: int = 0
    ttl_s: float | None = None
    """Seconds left on the first key of this kind seen (-1: no expiry)."""
    lengths: int = 0
    """Sum of LLEN (lists) or STRLEN (strings)."""


@dataclass
class Census:
    """Keys and bytes of one prefix at one moment."""

    info: dict[str, int]
    baseline: dict[str, int]
    """The same `INFO` fields before the first turn."""
    kinds: dict[str, KindStats] = field(default_factory=dict)
    per_conversation: dict[str, int] = field(default_factory=dict)
    """Bytes of every key of each conversation (MEMORY USAGE)."""

    def delta(self, name: str = "used_memory") -> int:
        """How much an `INFO` field grew since the baseline."""
        return self.info[name] - self.baseline[name]

    @property
    def keys(self) -> int:
        return sum(k.keys for k in self.kinds.values())

    @property
    def key_bytes(self) -> int:
        return sum(k.bytes for k in self.kinds.values())

    def kind_bytes(self, *names: str) -> int:
        return sum(self.kinds[n].bytes for n in names if n in self.kinds)


async def info_fields(redis: Redis) -> dict[str, int]:
    """`used_memory` (what the allocator holds for the server), the part of it that is keys
    and values (`used_memory_dataset`), client buffers, and connected clients."""
    info = {**(await redis.info("memory")), **(await redis.info("clients"))}
    return {name: int(info.get(name, 0)) for name in _INFO_FIELDS}


async def census(redis: Redis, prefix: str, baseline: dict[str, int], batch: int = 2000) -> Census:
    """Every key under `prefix:` classified and sized; TTL read on the first key of a kind."""
    result = Census(await info_fields(redis), baseline)
    names = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=5000)]
    per_conv: dict[str, int] = defaultdict(int)
    for start in range(0, len(names), batch):
        chunk = names[start : start + batch]
        async with redis.pipeline(transaction=False) as pipe:
            for name in chunk:
                pipe.memory_usage(name, samples=0)
                pipe.type(name)
            answers = await pipe.execute()
        sizes, types = answers[0::2], answers[1::2]
        async with redis.pipeline(transaction=False) as pipe:
            for name, type_ in zip(chunk, types, strict=True):
                kind = _decode(type_)
                if kind == "list":
                    pipe.llen(name)
                elif kind == "string":
                    pipe.strlen(name)
                else:
                    pipe.exists(name)
            lengths = await pipe.execute()
        for name, size, length in zip(chunk, sizes, lengths, strict=True):
            kind, conv = key_kind(_decode(name)[len(prefix) + 1 :])
            stats = result.kinds.setdefault(kind, KindStats())
            if stats.keys == 0:
                pttl = int(await redis.pttl(name))
                stats.ttl_s = pttl / 1000 if pttl >= 0 else -1.0
            stats.keys += 1
            stats.bytes += int(size or 0)  # None: expired between SCAN and MEMORY USAGE
            stats.lengths += int(length or 0)
            if conv is not None:
                per_conv[conv] += int(size or 0)
    result.per_conversation = dict(per_conv)
    return result


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
