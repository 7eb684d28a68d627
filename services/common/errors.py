"""How an HTTP edge answers when a dependency fails under it: 503, so the caller retries.

Providers retry a 5xx later (Twilio, VoIPBin) and the chat page retries `unavailable`; a
503 is the one answer that means "nothing was taken, try again". Handlers need not catch
Redis or Kafka errors themselves for that: an error that reaches the app becomes a 503 here,
never an unhandled exception with a traceback in the log. WebSockets are not covered (a
socket has no status code): the chat channel turns the same errors into its `unavailable`
frame itself.
"""

from __future__ import annotations

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from redis.exceptions import RedisError

from shared.logs import ThrottledLog, get_logger

log = get_logger("http.errors")
_unavailable_log = ThrottledLog(log, "http.dependency_unavailable")

UNAVAILABLE_ANSWERS = Counter(
    "switchboard_http_unavailable_total",
    "HTTP requests answered 503: a dependency failed",
    ["dependency"],
)

RETRY_AFTER_S = "2"


def install_dependency_error_handlers(app: FastAPI, *extra: type[Exception]) -> None:
    """Answer Redis, Kafka and `extra` errors (e.g. ingress's `PublishFailed`) with 503."""

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        dependency = "redis" if isinstance(exc, RedisError) else "kafka"
        UNAVAILABLE_ANSWERS.labels(dependency).inc()
        _unavailable_log.warning(path=request.url.path, error=type(exc).__name__)
        return JSONResponse(
            {"error": "unavailable", "message": "a dependency is unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_S},
        )

    for error in (RedisError, KafkaError, *extra):
        app.add_exception_handler(error, unavailable)
