"""Diagnostic: how long a reply waits in egress's poll, `python -m bench.harness.egress_poll`.

Not part of a benchmark table; the evidence behind `services/egress/polling.py`. One
producer sends records (acks=all, keys spread over 5 conversations) one at a time at a
caller's pace (a random 50-150 ms apart, so the consumer is idle when each arrives) and
times send → the handler sees the record, for three consumers of the bench's Kafka, one
after the other, each on its own topic, in rounds (the machine is shared: compare within a
round):

- `raw`: a bare aiokafka `getmany(timeout_ms=200)` loop, the floor;
- `shipped`: egress's subscriber, a FastStream batch subscriber with `batch_timeout_ms=200`
  and `without_idle_sleep`;
- `faststream`: the same subscriber as it was, FastStream's own poll with
  `batch_timeout_ms=20` (it sleeps that long again after every empty poll).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage

from bench.harness import infra as infra_mod
from bench.harness.stats import percentile_cells
from services.common.kafka import make_broker
from services.egress.polling import without_idle_sleep

Arrivals = dict[int, asyncio.Event]


async def raw_consumer(
    topic: str, bootstrap: str, arrivals: Arrivals
) -> Callable[[], Awaitable[None]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}.raw",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()

    async def loop() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=100)
            for records in batches.values():
                for record in records:
                    arrivals[int(record.value or b"0")].set()
            if batches:
                await consumer.commit()

    task = asyncio.create_task(loop())

    async def stop() -> None:
        task.cancel()
        await consumer.stop()

    return stop


async def faststream_consumer(
    topic: str, bootstrap: str, arrivals: Arrivals, shipped: bool
) -> Callable[[], Awaitable[None]]:
    broker = make_broker(bootstrap, "egress-poll-probe")
    subscriber = broker.subscriber(
        topic,
        group_id=f"{topic}.fs",
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        batch=True,
        max_records=100,
        batch_timeout_ms=200 if shipped else 20,
    )
    if shipped:
        without_idle_sleep(subscriber)

    @subscriber
    async def handle(message: KafkaMessage) -> None:
        for record in message.raw_message:
            arrivals[int(record.value or b"0")].set()
        await message.ack()

    await broker.start()
    return broker.stop


async def one_consumer(infra: infra_mod.Infra, kind: str, messages: int) -> list[float]:
    """send → handler ms for `messages` records through one consumer of `kind`."""
    namespace = infra_mod.new_namespace("poll")
    topic = (await infra_mod.create_topics(infra, namespace)).inbound
    bootstrap = infra.kafka_bootstrap_servers
    arrivals: Arrivals = {}
    if kind == "raw":
        stop = await raw_consumer(topic, bootstrap, arrivals)
    else:
        stop = await faststream_consumer(topic, bootstrap, arrivals, shipped=kind == "shipped")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    waits: list[float] = []
    try:
        await asyncio.sleep(3)  # the group settles: the first records must not wait for it
        for index in range(messages):
            await asyncio.sleep(random.uniform(0.05, 0.15))
            arrivals[index] = asyncio.Event()
            started = time.monotonic()
            await producer.send_and_wait(topic, str(index).encode(), key=b"c%d" % (index % 5))
            await asyncio.wait_for(arrivals[index].wait(), 10)
            waits.append((time.monotonic() - started) * 1000)
    finally:
        await producer.stop()
        await stop()
        await infra_mod.drop_namespace(infra, namespace)
    return waits


async def run(rounds: int, messages: int) -> str:
    infra = infra_mod.provision()
    rows = [
        "| round | consumer   | n   | p50 ms | p95 ms | p99 ms | max ms |",
        "|-------|------------|-----|--------|--------|--------|--------|",
    ]
    try:
        for round_no in range(1, rounds + 1):
            for kind in ("raw", "shipped", "faststream"):
                waits = await one_consumer(infra, kind, messages)
                cells = " | ".join(f"{cell:>6}" for cell in percentile_cells(waits))
                rows.append(f"| {round_no:>5} | {kind:<10} | {len(waits):>3} | {cells} |")
                print(rows[-1], flush=True)
    finally:
        infra_mod.teardown(infra)
    return "\n".join(["send (acks=all) → handler sees the record, ms", *rows])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    print(uvloop.run(run(args.rounds, args.messages)))


if __name__ == "__main__":
    main()
