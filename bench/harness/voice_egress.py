"""One egress process for the voice benchmark: `python -m bench.harness.voice_egress`.

The same composition as `switchboard egress` (settings from the environment, `create_app`,
uvicorn with the CLI's options), with one bench-only what-if:

- `--no-idle-sleep`: FastStream 0.7.8's batch subscriber
  (`faststream/kafka/subscriber/usecase.py`, `BatchSubscriber.get_msg`) long-polls
  `getmany(timeout_ms=batch_timeout_ms)` and, when that returns nothing, *also* sleeps
  `batch_timeout_ms` before polling again. Egress subscribes its reply topics with
  `batch_timeout_ms=100` (`services/egress/main.py`), so a reply that reaches an idle egress
  during that sleep waits up to 100 ms. This switch replaces `get_msg` with the same poll
  minus the sleep, to measure what the sleep costs a voice turn. Not the shipped
  configuration.
"""

from __future__ import annotations

import argparse
from itertools import chain
from typing import Any

import uvicorn
from faststream.kafka.subscriber.usecase import BatchSubscriber

from services.egress.config import EgressSettings
from services.egress.main import create_app
from shared.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-idle-sleep", action="store_true", help="what-if")
    args = parser.parse_args(argv)
    if args.no_idle_sleep:
        _poll_without_idle_sleep()
    settings = EgressSettings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def _poll_without_idle_sleep() -> None:
    """`BatchSubscriber.get_msg` without the sleep after an empty long poll (what-if only)."""

    async def get_msg(self: BatchSubscriber, consumer: Any) -> tuple[Any, ...]:
        messages = await consumer.getmany(
            timeout_ms=self.batch_timeout_ms, max_records=self.max_records
        )
        return tuple(chain(*messages.values()))

    BatchSubscriber.get_msg = get_msg  # type: ignore[method-assign]  # the what-if itself


if __name__ == "__main__":
    main()
