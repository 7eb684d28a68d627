"""A consumer group's members and the partitions each one holds, from the broker.

Read with the admin client's DescribeGroups rather than the workers' logs: a member that got
no partitions logs nothing different, but the coordinator reports its empty assignment.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment


async def assignment(bootstrap: str, group_id: str) -> tuple[str, list[int]]:
    """(group state, partitions held by each member, largest first)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group_id])
    finally:
        await admin.close()
    group = response.to_object()["groups"][0]
    held = []
    for member in group["members"]:
        raw = member["member_assignment"]
        decoded = ConsumerProtocolMemberAssignment.decode(raw) if raw else None
        held.append(sum(len(parts) for _, parts in decoded.assignment) if decoded else 0)
    return group["state"], sorted(held, reverse=True)


async def wait_stable(
    bootstrap: str, group_id: str, members: int, partitions: int, timeout_s: float = 90.0
) -> list[int]:
    """Wait until `members` workers are in the group, Stable, holding all `partitions` of
    the inbound topic (the only topic the brain subscribes to). Returns what each holds."""
    deadline = time.monotonic() + timeout_s
    last: tuple[str, list[int]] = ("?", [])
    while time.monotonic() < deadline:
        last = await assignment(bootstrap, group_id)
        state, held = last
        if state == "Stable" and len(held) == members and sum(held) >= partitions:
            return held
        await asyncio.sleep(0.5)
    raise RuntimeError(f"group {group_id} not stable with {members} members: {last}")


def process_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024  # the kernel reports kB
    return values
