"""What the message kinds of a spoken channel (a phone call) mean for a turn.

Any channel whose profile has the speech modality gets this (VoIPBin today, VAPI next):

- CALL_STARTED, CALL_ENDED, PARTIAL_TRANSCRIPT are *call control*: no model call, no memory
  entry, one reply each (OPEN, CLOSE, STOP) for egress to open the call's sessions, close
  them, or stop speaking (barge-in).
- GREETING is a turn without a caller utterance: the engine is asked to greet the caller
  (`prompt.GREETING_INSTRUCTION`) and only the greeting is remembered.
- DTMF is a caller turn whose utterance is the keys pressed (`prompt.KEYS_PRESSED`).
- TEXT is a caller turn (a final transcript).

A spoken answer is streamed sentence by sentence when the profile says the channel takes
parts, unless someone holds a request open for it (reply mode SYNC: VoIPBin's `fetch` for
the greeting and keypad turns); then it is one whole reply. See
`services.brain.double_texting` for which answers a newer event interrupts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.brain.goodbye import is_goodbye
from services.brain.prompt import GREETING_INSTRUCTION, KEYS_PRESSED
from shared.contracts import InboundMessage, MessageKind, ReplyKind, ReplyModeKind

CONTROL_REPLIES = {
    MessageKind.CALL_STARTED: ReplyKind.OPEN,
    MessageKind.CALL_ENDED: ReplyKind.CLOSE,
    MessageKind.PARTIAL_TRANSCRIPT: ReplyKind.STOP,
}
"""Call control: the reply kind each control message becomes."""

ANSWERED_KINDS = frozenset({MessageKind.TEXT, MessageKind.DTMF, MessageKind.GREETING})
"""Kinds of a spoken channel the engine answers."""

GREETING_FALLBACK = "Hello, thanks for calling. How can I help you today?"
"""Spoken when the engine cannot produce the greeting in time (the chat apology would be odd)."""

_KEYS = re.compile(r"[^0-9*#A-D]")


def is_control(message: InboundMessage) -> bool:
    """A call event of a spoken channel that becomes one control reply, with no model call."""
    return message.profile.spoken and message.kind in CONTROL_REPLIES


def is_spoken_answer(message: InboundMessage) -> bool:
    """A call event the engine answers (an utterance, keys pressed, a greeting)."""
    if not message.profile.spoken or message.kind not in ANSWERED_KINDS:
        return False
    if message.kind is MessageKind.GREETING:
        return True
    if message.kind is MessageKind.DTMF:
        return bool(keys_of(message))
    return bool(message.text.strip())


def answered_whole(message: InboundMessage) -> bool:
    """A held request waits for this answer (SYNC): one whole reply, not streamed parts."""
    return message.reply.kind is ReplyModeKind.SYNC


def streams_parts(message: InboundMessage) -> bool:
    """The answer goes out sentence by sentence, interruptible between sentences."""
    return message.profile.streams_parts and not answered_whole(message)


def keys_of(message: InboundMessage) -> str:
    """The keypad keys of a DTMF message, anything that is not a key dropped."""
    return _KEYS.sub("", message.text.upper())


def engine_text(message: InboundMessage) -> str:
    """What the engine is told the customer said (or what to do, for a greeting)."""
    if message.kind is MessageKind.GREETING:
        return GREETING_INSTRUCTION
    if message.kind is MessageKind.DTMF:
        return KEYS_PRESSED.format(keys=keys_of(message))
    return message.text


def remembered_text(message: InboundMessage) -> str | None:
    """The customer's side of the turn in memory; None for a greeting (nobody spoke)."""
    if message.kind is MessageKind.GREETING:
        return None
    return engine_text(message)


def caller_said_goodbye(messages: Sequence[InboundMessage]) -> bool:
    """The turn's last utterance on a call is a goodbye: the call ends after the answer."""
    last = messages[-1]
    return last.profile.spoken and last.kind is MessageKind.TEXT and is_goodbye(last.text)
