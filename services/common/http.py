"""Health, readiness, liveness and metrics endpoints, the same on every service.

- `/healthz`: the process runs (kept for compatibility; says nothing about dependencies).
- `/readyz`: 200 only while this service can do its work right now: its Kafka producer is
  connected and not in an outage, a broker answers a metadata request, Redis answers a PING,
  plus any service-specific check (the brain's consumer). 503 with the failing checks
  otherwise. Orchestrators stop routing to it; ingress keeps answering with 503/`unavailable`.
- `/livez`: 503 once the service is wedged: Kafka has answered for `wedged_after_s` while
  this service still could not publish or consume. Restarting it is the cure; an outage of
  Kafka itself never fails liveness (a restart cannot help and would only crash-loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

from services.common.producer import KafkaProducer

ReadinessCheck = Callable[[], Awaitable[bool]]
WedgeGauge = Callable[[], float]
"""Seconds a component has been wedged (0 when it is not)."""


def health_router(
    service: str,
    checks: dict[str, ReadinessCheck],
    wedges: dict[str, WedgeGauge] | None = None,
    wedged_after_s: float = 60.0,
) -> APIRouter:
    """`/healthz`, `/readyz` (every check passes), `/livez` (nothing wedged), `/metrics`."""
    router = APIRouter()
    wedges = wedges or {}

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results = await asyncio.gather(*(_safe(check) for check in checks.values()))
        status = dict(zip(checks, results, strict=True))
        ready = all(results)
        return JSONResponse(
            {"ready": ready, "service": service, "checks": status},
            status_code=200 if ready else 503,
        )

    @router.get("/livez", include_in_schema=False)
    async def livez() -> JSONResponse:
        wedged = {name: round(gauge(), 1) for name, gauge in wedges.items()}
        alive = all(seconds < wedged_after_s for seconds in wedged.values())
        return JSONResponse(
            {"alive": alive, "service": service, "wedged_s": wedged},
            status_code=200 if alive else 503,
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _safe(check: ReadinessCheck, timeout_s: float = 2.0) -> bool:
    try:
        return await asyncio.wait_for(check(), timeout_s)
    except Exception:
        return False


def infrastructure_checks(producer: KafkaProducer, redis: Redis) -> dict[str, ReadinessCheck]:
    """The readiness checks every service has: it can publish to Kafka, Redis answers."""

    async def kafka() -> bool:
        return producer.usable and await producer.probe()

    async def redis_ping() -> bool:
        return bool(await redis.ping())

    return {"kafka": kafka, "redis": redis_ping}


def service_health_router(
    service: str,
    producer: KafkaProducer,
    redis: Redis,
    wedged_after_s: float,
    extra_checks: dict[str, ReadinessCheck] | None = None,
) -> APIRouter:
    """The health endpoints of a service built on one `KafkaProducer` and one Redis:
    readiness from both (plus `extra_checks`), liveness from the producer's wedge gauge."""
    return health_router(
        service,
        {**infrastructure_checks(producer, redis), **(extra_checks or {})},
        wedges={"kafka_publish": lambda: producer.wedged_for},
        wedged_after_s=wedged_after_s,
    )
