"""The Kafka floor of this machine: what one produce (acks=all) and one hop cost, alone.

Benchmark 1's turn crosses Kafka twice (inbound, reply) and waits for acks=all three times
on its critical path. This measures, with nothing else running, one idempotent producer's
ack latency and the produce → consumer-receives latency of one hop (a consumer in the same
process, fetching as the services do), at a low steady rate.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.harness.infra import Infra, create_topics, drop_namespace, new_namespace


async def measure(
    infra: Infra, messages: int = 500, rate_per_s: float = 100.0
) -> tuple[list[float], list[float]]:
    """(ack ms, produce → received ms) for `messages` single records sent at `rate_per_s`."""
    namespace = new_namespace("floor")
    topics = await create_topics(infra, namespace)
    bootstrap = infra.kafka_bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    consumer = AIOKafkaConsumer(
        topics.inbound,
        bootstrap_servers=bootstrap,
        group_id=f"{namespace}.floor",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    sent: dict[bytes, float] = {}
    hops: list[float] = []
    acks: list[float] = []
    await producer.start()
    await consumer.start()

    async def receive() -> None:
        while len(hops) < messages:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                now = time.perf_counter()
                hops.extend((now - sent[r.value]) * 1000 for r in batch if r.value in sent)

    receiver = asyncio.create_task(receive())
    try:
        await asyncio.sleep(2)  # the consumer has joined its group
        start = time.perf_counter()
        for i in range(messages):
            delay = start + i / rate_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            value = f"m{i}".encode()
            sent[value] = time.perf_counter()
            await producer.send_and_wait(topics.inbound, value, key=value)
            acks.append((time.perf_counter() - sent[value]) * 1000)
        await asyncio.wait_for(receiver, 30)
    finally:
        receiver.cancel()
        await producer.stop()
        await consumer.stop()
        await drop_namespace(infra, namespace)
    return acks, hops
