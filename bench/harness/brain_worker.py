"""One brain worker process for the benchmarks: `python -m bench.harness.brain_worker`.

The same composition as `switchboard brain` (settings from the environment, `create_app`,
uvicorn with the CLI's options) with bench-only switches:

- `--engine instant`: `InstantEngine` in-process instead of the configured engine, to
  measure the brain's own cost without a model server (the `engine` override of
  `services.brain.main.create_app` exists for this). `--engine configured` keeps
  `BRAIN_ENGINE` / `OPENAI_*` as the real CLI would.
- `--profile PATH`: run under cProfile and write the stats to PATH on SIGTERM.
- `--redis-max-connections N`: a what-if, not the shipped configuration. `make_redis` leaves
  redis-py's pool at its default (100 connections in redis-py 8, then `MaxConnectionsError`)
  while the brain runs up to `BRAIN_MAX_IN_FLIGHT` (1000) turns at once; this raises the
  limit of the brain's Redis pools to N, to measure what that limit costs.
"""

from __future__ import annotations

import argparse
import cProfile
import signal
import sys

import uvicorn
from redis.asyncio import Redis

from bench.harness.engines import InstantEngine
from services.brain import main as brain_main
from services.brain.config import BrainSettings
from services.brain.main import create_app
from shared.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--engine", choices=["instant", "configured"], default="instant")
    parser.add_argument("--profile", default=None, help="write cProfile stats here on exit")
    parser.add_argument("--redis-max-connections", type=int, default=None, help="what-if")
    args = parser.parse_args(argv)
    if args.redis_max_connections:
        _widen_redis_pools(args.redis_max_connections)

    settings = BrainSettings()
    configure_logging(settings.log_level, settings.log_format)
    engine = InstantEngine() if args.engine == "instant" else None
    app = create_app(settings, engine=engine)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        # uvicorn re-raises the SIGTERM it caught once it has shut down; make that an exit
        # that runs `finally` (and writes the profile) instead of the default instant death.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        profiler.enable()
    try:
        uvicorn.run(
            app,
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


def _widen_redis_pools(max_connections: int) -> None:
    """Make the brain's `make_redis` clients allow `max_connections` (what-if only)."""
    namespace = vars(brain_main)  # the name `create_app` looks up at call time
    original = namespace["make_redis"]

    def make_redis(url: str, socket_timeout: float | None = 10.0) -> Redis:
        client: Redis = original(url, socket_timeout=socket_timeout)
        client.connection_pool.max_connections = max_connections
        return client

    namespace["make_redis"] = make_redis


if __name__ == "__main__":
    main()
