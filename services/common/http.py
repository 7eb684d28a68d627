"""Health, readiness and metrics endpoints, the same on every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

ReadinessCheck = Callable[[], Awaitable[bool]]


def health_router(service: str, checks: dict[str, ReadinessCheck]) -> APIRouter:
    """`/healthz` (the process runs), `/readyz` (every dependency answers), `/metrics`."""
    router = APIRouter()

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

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _safe(check: ReadinessCheck, timeout_s: float = 2.0) -> bool:
    try:
        return await asyncio.wait_for(check(), timeout_s)
    except Exception:
        return False


def infrastructure_checks(broker: KafkaBroker, redis: Redis) -> dict[str, ReadinessCheck]:
    """The readiness checks every service has: Kafka and Redis answer."""

    async def kafka() -> bool:
        return bool(await broker.ping(timeout=2.0))

    async def redis_ping() -> bool:
        return bool(await redis.ping())

    return {"kafka": kafka, "redis": redis_ping}
