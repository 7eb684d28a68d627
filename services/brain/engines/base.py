"""The engine port: whatever produces the agent's answer for one turn.

The brain builds one `EngineRequest` per turn (the conversation so far, shared by every
channel, plus the new user text) and asks an `Engine` for the answer. Engines return plain
text; shaping for the channel (voice, SMS, chat) happens after, in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class EngineTurn:
    """One remembered turn of the conversation, tagged with the channel it happened on."""

    role: Role
    text: str
    channel: str


@dataclass(frozen=True)
class EngineRequest:
    """Everything an engine may use to answer one turn."""

    conversation_id: str
    channel: str
    user_text: str
    history: Sequence[EngineTurn] = field(default_factory=tuple)
    summary: str = ""


class EngineError(Exception):
    """The engine could not produce an answer (model down, timeout, budget exhausted)."""


class Engine(Protocol):
    """Produces the agent's answer for one turn."""

    name: str

    async def generate(self, request: EngineRequest) -> str:
        """Return the answer text, or raise `EngineError` when none can be produced."""
        ...

    async def aclose(self) -> None:
        """Release network clients; called once when the brain stops."""
        ...
