"""`switchboard`: one command, a subcommand per service and tool.

switchboard ingress | brain | egress     run one service instance (HTTP on its port)
switchboard topics create | check        create missing topics / check every topic's layout
switchboard schemas export | check       write / verify shared/schemas/v1.json, docs/asyncapi.yaml
switchboard fake openai|twilio|voipbin|vapi   run a provider fake (model, Twilio, VoIPBin, VAPI)
switchboard simulate sms "Hi" --from N   text the running system as Twilio would, show the reply
switchboard simulate call --from N "Hi"  phone it through the fake VoIPBin, show the answers
switchboard simulate vapi --from N "Hi"  phone it through the fake VAPI, show what was heard
switchboard voipbin setup --public-url U point a VoIPBin account (webhook, flow) at Switchboard
switchboard voipbin call --to N|sip:...  place an outbound call that runs that flow
switchboard vapi setup --public-url U    create/update the VAPI assistant and its credentials
switchboard vapi call --to +1...         place an outbound VAPI call with that assistant
switchboard dlq list | replay            dead letters: inspect them, replay them after a fix
switchboard redis migrate-keys           rename pre-cluster Redis keys (docs/redis-cluster.md)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from shared.logs import configure_logging
from shared.settings import BaseServiceSettings


def _serve(build: Callable[[], tuple[Any, BaseServiceSettings]], args: argparse.Namespace) -> int:
    import uvicorn

    app, settings = build()
    host = args.host or settings.host  # type: ignore[attr-defined]
    port = args.port or settings.port  # type: ignore[attr-defined]
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        # Keep the logging `configure_logging` set up: uvicorn's own config would print
        # tracebacks with their messages ("Exception in ASGI application" quoting a
        # customer's text); ours prints their type and frames only.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        # Chat frames are limited to 64 KB by the protocol; a bigger one is closed with 1009
        # by the server instead of being buffered whole first (the default allows 16 MB).
        ws_max_size=256 * 1024,
        ws_ping_interval=20,
        ws_ping_timeout=20,
    )
    return 0


def _ingress() -> tuple[Any, BaseServiceSettings]:
    from services.ingress.config import IngressSettings
    from services.ingress.main import create_app

    settings = IngressSettings()
    _configure(settings)
    return create_app(settings), settings


def _brain() -> tuple[Any, BaseServiceSettings]:
    from services.brain.config import BrainSettings
    from services.brain.main import create_app

    settings = BrainSettings()
    _configure(settings)
    return create_app(settings), settings


def _egress() -> tuple[Any, BaseServiceSettings]:
    from services.egress.config import EgressSettings
    from services.egress.main import create_app

    settings = EgressSettings()
    _configure(settings)
    return create_app(settings), settings


def _configure(settings: BaseServiceSettings) -> None:
    configure_logging(settings.log_level, settings.log_format)


def _topics(args: argparse.Namespace) -> int:
    from services.channels.registry import channel_names
    from services.common.kafka_topics import ensure_topics

    settings = BaseServiceSettings()
    _configure(settings)
    names = settings.topics.all(channel_names())
    report = asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            names,
            settings.topic_partitions,
            settings.kafka_replication_factor,
            settings.kafka_min_insync_replicas,
            create=args.action == "create",
        )
    )
    print(f"wanted: {report.layout} ({report.brokers} brokers)")
    # Differences go to stderr: `make run` hides stdout, and a wrong topic must be seen.
    for line in report.problems:
        print(f"MISMATCH {line}", file=sys.stderr)
    if args.action == "check":
        print(f"{len(names) - len(report.differing)} of {len(names)} topics as wanted")
        return 1 if report.problems else 0
    print(f"topics ready ({len(report.created)} created): {', '.join(names)}")
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from shared import asyncapi, schemas

    if args.action == "export":
        print(f"wrote {schemas.export()}")
        print(f"wrote {asyncapi.export()}")
        return 0
    stale = [
        name
        for name, path, text in (
            ("shared/schemas/v1.json", schemas.SCHEMA_FILE, schemas.render()),
            ("docs/asyncapi.yaml", asyncapi.ASYNCAPI_FILE, asyncapi.render()),
        )
        if path.read_text(encoding="utf-8") != text
    ]
    for name in stale:
        print(f"{name} is out of date: run `switchboard schemas export`")
    if stale:
        return 1
    print("schemas up to date")
    return 0


def _fake(args: argparse.Namespace, rest: list[str]) -> int:
    if args.provider == "twilio":
        from services.channels.sms import fake as twilio_server

        twilio_server.main(rest)
        return 0
    if args.provider == "voipbin":
        from services.channels.voipbin import fake as voipbin

        voipbin.main(rest)
        return 0
    if args.provider == "vapi":
        from services.channels.vapi import fake as vapi

        vapi.main(rest)
        return 0
    from services.fakes import openai_server

    openai_server.main(rest)
    return 0


def _configure_tool() -> None:
    """Tools talk to a person: warnings only, unless LOG_LEVEL asks for more."""
    settings = BaseServiceSettings()
    level = settings.log_level if "log_level" in settings.model_fields_set else "WARNING"
    configure_logging(level, settings.log_format)


def _simulate(args: argparse.Namespace) -> int:
    from services.tools import simulate

    if args.channel in ("call", "vapi"):
        _configure_tool()
    else:
        _configure(BaseServiceSettings())
    return simulate.run(args)


def _voipbin(args: argparse.Namespace) -> int:
    from services.channels.voipbin.tools import setup as voipbin_setup

    _configure_tool()
    return voipbin_setup.run(args)


def _vapi(args: argparse.Namespace) -> int:
    from services.channels.vapi.tools import setup as vapi_setup

    _configure_tool()
    return vapi_setup.run(args)


def _dlq(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaConnectionError

    from services.tools import dead_letters

    settings = BaseServiceSettings()
    _configure(settings)
    try:
        return dead_letters.run(args)
    except KafkaConnectionError:
        print(f"cannot reach Kafka at {settings.kafka_bootstrap_servers} (is `make up` running?)")
        return 1


def _redis(args: argparse.Namespace) -> int:
    from services.tools import redis_keys

    settings = BaseServiceSettings()
    _configure(settings)
    return redis_keys.run(args, settings.redis_url, settings.redis_prefix)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="switchboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("ingress", "brain", "egress"):
        service = sub.add_parser(name, help=f"run the {name} service")
        service.add_argument("--host", default=None, help="bind address (default from settings)")
        service.add_argument("--port", type=int, default=None, help="port (default from settings)")
    topics = sub.add_parser("topics", help="manage Kafka topics")
    topics.add_argument(
        "action",
        choices=["create", "check"],
        help="create: make missing topics, report existing ones that differ (exit 0); "
        "check: create nothing, exit 1 if a topic is missing or differs",
    )
    schemas = sub.add_parser("schemas", help="JSON Schema and AsyncAPI files of the contracts")
    schemas.add_argument("action", choices=["export", "check"])
    fake = sub.add_parser("fake", help="run a provider fake (extra arguments go to it)")
    fake.add_argument("provider", choices=["openai", "twilio", "voipbin", "vapi"])
    from services.channels.vapi.tools import setup as vapi_setup
    from services.channels.voipbin.tools import setup as voipbin_setup
    from services.tools import dead_letters, redis_keys, simulate

    simulate.add_arguments(sub.add_parser("simulate", help="act as a provider against the system"))
    voipbin_setup.add_arguments(sub.add_parser("voipbin", help="set up VoIPBin, place calls"))
    vapi_setup.add_arguments(sub.add_parser("vapi", help="set up VAPI, place calls"))
    dead_letters.add_arguments(sub.add_parser("dlq", help="list or replay dead letters"))
    redis_keys.add_arguments(sub.add_parser("redis", help="Redis maintenance (key migration)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `switchboard` command."""
    args, rest = build_parser().parse_known_args(argv)
    if args.command == "fake":
        return _fake(args, rest)
    if rest:
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "ingress":
        return _serve(_ingress, args)
    if args.command == "brain":
        return _serve(_brain, args)
    if args.command == "egress":
        return _serve(_egress, args)
    if args.command == "topics":
        return _topics(args)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "dlq":
        return _dlq(args)
    if args.command == "voipbin":
        return _voipbin(args)
    if args.command == "vapi":
        return _vapi(args)
    if args.command == "redis":
        return _redis(args)
    return _schemas(args)


if __name__ == "__main__":
    sys.exit(main())
