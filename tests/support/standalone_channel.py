"""A channel that runs as its own process: "kiosk", built on the SDK's `ChannelService` and the
contracts only (the end-to-end tests check its imports).

    python -m tests.support.standalone_channel --bootstrap 127.0.0.1:9092 --namespace ns \\
        --user kiosk-7 --text "my name is Ada" --text "what is my name?"

Publishes each `--text` as one message of `--user` (ids `<run>-1`, `<run>-2`, ...; with
`--retry` each is published twice, as a client retrying would), then shows each reply once:
one JSON line per reply on stdout, in the order they arrived. Exits 0 once every message is
answered, 2 when `--timeout` passes first. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid

from services.channels.sdk.service import ChannelService
from shared.contracts import ChannelProfile, IdentityRealm, Modality, Reply, ReplyKind, TextFormat
from shared.logs import configure_logging

NAME = "kiosk"
SEGMENTS = 1


def kiosk_profile() -> ChannelProfile:
    """A small screen that shows GSM-7 text of one SMS segment; its users are its own."""
    return ChannelProfile(
        modality=Modality.TEXT,
        text_format=TextFormat.GSM7,
        max_chars=160,
        max_segments=SEGMENTS,
        identity_realm=IdentityRealm.OWN,
    )


class Screen:
    """The kiosk's side of delivery: shows a reply once per `reply_id`, in arrival order."""

    def __init__(self) -> None:
        self.shown: dict[str, Reply] = {}
        self.answered: set[str] = set()
        self.repeats = 0
        self.changed = asyncio.Event()

    async def deliver(self, reply: Reply) -> None:
        if reply.kind is not ReplyKind.MESSAGE:
            return
        if reply.reply_id in self.shown:
            self.repeats += 1  # a redelivery: already on screen
            return
        self.shown[reply.reply_id] = reply
        self.answered.update(reply.covers or [reply.in_reply_to])
        line = {
            "reply_id": reply.reply_id,
            "in_reply_to": reply.in_reply_to,
            "covers": reply.covers,
            "conversation_id": reply.conversation_id,
            "channel": reply.channel,
            "address": reply.address,
            "text": reply.text,
        }
        print(json.dumps(line), flush=True)
        self.changed.set()

    async def wait_for(self, ids: list[str]) -> None:
        while not set(ids) <= self.answered:
            self.changed.clear()
            await self.changed.wait()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--namespace", required=True, help="Topic namespace of the deployment")
    parser.add_argument("--user", required=True, help="The kiosk user (the address)")
    parser.add_argument("--text", action="append", required=True, help="A message (repeatable)")
    parser.add_argument("--run", default=uuid.uuid4().hex[:8], help="Prefix of message ids")
    parser.add_argument("--retry", action="store_true", help="Publish every message twice")
    parser.add_argument("--timeout", type=float, default=90.0, help="Seconds to wait in all")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    screen = Screen()
    service = ChannelService(
        name=NAME,
        profile=kiosk_profile(),
        bootstrap_servers=args.bootstrap,
        deliver=screen.deliver,
        namespace=args.namespace,
        instance_id=f"kiosk-{args.run}",
        partitions=3,
    )
    ids = [f"{args.run}-{number}" for number in range(1, len(args.text) + 1)]
    try:
        async with asyncio.timeout(args.timeout):
            await service.start()
            for message_id, text in zip(ids, args.text, strict=True):
                for _ in range(2 if args.retry else 1):
                    await service.publish(
                        provider_message_id=message_id, address=args.user, text=text
                    )
            await screen.wait_for(ids)
    except TimeoutError:
        missing = sorted(set(ids) - screen.answered)
        print(json.dumps({"error": "timeout", "unanswered": missing}), file=sys.stderr)
        return 2
    finally:
        await service.stop()
    print(json.dumps({"done": len(ids), "repeats": screen.repeats}), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    configure_logging("WARNING", "json")  # stderr: stdout carries the replies only
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
