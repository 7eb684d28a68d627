"""Realistic inbound traffic for the sizing benchmark: chat and SMS conversations, N turns deep.

Memory per conversation depends on what is stored, so the load looks like production where it
matters for bytes: conversation ids as ingress derives them (`conv_` + 24 hex), chat session
ids and SMS numbers and MessageSids of the real shapes, and caller lines of 40-120 characters
drawn from support-chat phrasings. The model's answers come from the fake model server with
`ANSWER_TEMPLATE` (260 characters plus the caller's line: a typical support answer).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.harness.sms_common import phone_number
from services.channels.sdk.identity import default_conversation_id
from services.channels.sms.profile import sms_profile
from services.channels.webchat.tokens import new_session_id
from shared.contracts import Channel, IdentityRealm, InboundMessage
from shared.tracing import new_trace

ANSWER_TEMPLATE = (
    "Thanks for reaching out, I can help with that. Our support team is available Monday to"
    " Friday from 8 am to 8 pm and on Saturdays from 9 am to 5 pm. Orders usually ship within"
    " two business days and you can track them from your account page. About your question:"
    " {last_user}"
)
"""The fake model's answer. `{last_user}` makes it 300-380 characters for a chat turn, and
makes a summary request echo the whole summary input, so every running summary is cut to
`BRAIN_SUMMARY_MAX_CHARS`: the largest summary a conversation can hold (worst case)."""

_OPENINGS = (
    "Hi, ",
    "Hello, ",
    "Hey there, ",
    "Good morning, ",
    "",
    "Quick question: ",
    "Sorry to bother you again, ",
)
_ASKS = (
    "where is my order {order}? It said it would arrive on {day}",
    "can I change the delivery address for order {order} to my office",
    "I was charged twice for order {order}, can you refund one of the payments",
    "what are your opening hours on {day}",
    "do you ship to Canada, and how long does it usually take",
    "the tracking link for {order} does not work for me",
    "I want to return the blue jacket from order {order}, it is too small",
    "is the {item} back in stock yet",
    "my discount code did not apply at checkout, can you help",
    "can I pick up order {order} in the store on {day} instead",
    "how do I reset the password of my account",
    "the {item} arrived broken, what should I do",
)
_CLOSINGS = ("", "?", ". Thanks!", ", thank you.", ". It is a bit urgent.", " please")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_ITEMS = ("wireless headset", "standing desk", "espresso machine", "rain jacket", "kids bike")


def caller_line(rng: random.Random) -> str:
    """One customer message of 40-120 characters."""
    while True:
        ask = rng.choice(_ASKS).format(
            order=f"#{rng.randrange(10_000, 99_999)}",
            day=rng.choice(_DAYS),
            item=rng.choice(_ITEMS),
        )
        line = rng.choice(_OPENINGS) + ask + rng.choice(_CLOSINGS)
        if 40 <= len(line) <= 120:
            return line[0].upper() + line[1:]


@dataclass(frozen=True)
class Conversation:
    """One customer: where they write from and the conversation ingress resolved them to."""

    channel: Channel
    address: str
    conversation_id: str


def conversations(count: int, sms_share: float) -> list[Conversation]:
    """`count` conversations, the first `sms_share` of them SMS, the rest web chat."""
    sms = round(count * sms_share)
    out = []
    for index in range(count):
        if index < sms:
            number = phone_number(index)
            conv = default_conversation_id(Channel.SMS, number, IdentityRealm.PHONE)
            out.append(Conversation(Channel.SMS, number, conv))
        else:
            session = new_session_id()
            out.append(
                Conversation(Channel.CHAT, session, default_conversation_id("chat", session))
            )
    return out


def turns(
    convs: list[Conversation], first: int, last: int, seed: int = 14
) -> Iterator[InboundMessage]:
    """Turns `first`..`last - 1` of every conversation, round-robin (turn k of each, then k+1).

    SMS texts are dated one minute apart: the brain collects texts sent within 2 s of each
    other into one turn, and a customer waiting for each answer writes minutes apart.
    """
    rng = random.Random(seed * 1_000_003 + first)
    start = datetime.now(UTC) - timedelta(minutes=last + 1)
    sms = sms_profile()
    for seq in range(first, last):
        for conv in convs:
            text = caller_line(rng)
            if conv.channel is Channel.SMS:
                yield InboundMessage(
                    channel=Channel.SMS,
                    profile=sms,
                    provider_message_id="SM" + secrets.token_hex(16),
                    address=conv.address,
                    conversation_id=conv.conversation_id,
                    text=text,
                    occurred_at=start + timedelta(minutes=seq),
                    trace=new_trace(),
                )
            else:
                yield InboundMessage(
                    channel=Channel.CHAT,
                    provider_message_id=f"{conv.address}:{secrets.token_hex(8)}",
                    address=conv.address,
                    conversation_id=conv.conversation_id,
                    text=text,
                    trace=new_trace(),
                )
