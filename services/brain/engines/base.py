"""The engine port: whatever produces the agent's answer for one turn.

The brain builds one `EngineRequest` per turn (the conversation so far, shared by every
channel, plus the new user text) and asks an `Engine` for the answer, whole (`generate`) or
as text deltas (`stream`). Engines return plain text; shaping for the channel (voice, SMS,
chat) happens after, in one place. `summarize` folds older turns into the running summary
the brain keeps, so memory stays bounded without forgetting across channels.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from shared.contracts import TextFormat

Role = Literal["user", "assistant"]

FailureReason = Literal[
    "timeout",
    "rate_limited",
    "server_error",
    "client_error",
    "connection",
    "empty_completion",
    "budget_exhausted",
]
"""Why an engine gave up; stable values, fit for metric labels and ops events."""


@dataclass(frozen=True)
class EngineTurn:
    """One remembered turn of the conversation, tagged with the channel it happened on."""

    role: Role
    text: str
    channel: str


@dataclass(frozen=True)
class EngineRequest:
    """Everything an engine may use to answer one turn.

    `budget_s`, when set, replaces the engine's configured per-turn budget for this call
    (retries and backoff included); callers with a deadline of their own (a synchronous
    channel waiting on the answer) pass what is left of it.
    """

    conversation_id: str
    channel: str
    user_text: str
    text_format: TextFormat = TextFormat.MARKDOWN
    """How the answer will be delivered (the channel profile's): picks the style hint."""
    history: Sequence[EngineTurn] = field(default_factory=tuple)
    summary: str = ""
    budget_s: float | None = None


class EngineError(Exception):
    """The engine could not produce an answer; the caller apologises or falls back.

    `reason` says why (see `FailureReason`); `str(error)` is the reason, so it can go into
    ops events as is. `attempts` counts the model requests made, retries included (0 when
    the budget was spent before the first one). `detail` is a short diagnostic (exception
    type, status) for logs; it never contains conversation text.
    """

    def __init__(self, reason: FailureReason, *, attempts: int = 1, detail: str = "") -> None:
        super().__init__(reason)
        self.reason: FailureReason = reason
        self.attempts = attempts
        self.detail = detail


class Engine(Protocol):
    """Produces the agent's answers and summaries."""

    name: str

    async def generate(self, request: EngineRequest) -> str:
        """Return the answer text, or raise `EngineError` when none can be produced."""
        ...

    def stream(self, request: EngineRequest) -> AsyncIterator[str]:
        """Yield the answer as text deltas whose concatenation is the answer.

        Raises `EngineError` before the first delta when no answer can be produced, and
        also after some deltas if the answer breaks off (nothing is retried once text has
        been yielded). Close the iterator (`contextlib.aclosing`) if you stop early.
        """
        ...

    async def summarize(
        self, previous_summary: str, turns: Sequence[EngineTurn], max_chars: int
    ) -> str:
        """Fold `turns` (oldest first) into `previous_summary`; at most `max_chars` long.

        When the summary must be trimmed, the newest facts are kept. Raises `EngineError`
        on failure; the caller keeps the turns (or the old summary) instead.
        """
        ...

    async def aclose(self) -> None:
        """Release network clients; called once when the brain stops."""
        ...
