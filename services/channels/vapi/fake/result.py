"""What a driven call records: the caller's lines, each turn, every message sent, the outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.channels.vapi.fake.stream import StreamOutcome


@dataclass(frozen=True)
class Line:
    """One thing the caller says. ``interrupt_after_chars``: the caller talks over the answer
    to this line once that many characters of it were heard (barge-in)."""

    text: str
    interrupt_after_chars: int | None = None


@dataclass
class SentMessage:
    """One server-URL message the fake sent, and what came back."""

    type: str
    url: str
    status_code: int | None
    elapsed_s: float
    response: Any = None
    error: str = ""
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Turn:
    """One caller line and the custom-LLM answer to it.

    ``heard`` is what the caller heard (``<flush />`` tags removed, cut at an interruption);
    ``model_output`` everything the model streamed before the stream ended or was closed.
    """

    index: int
    said: str
    request: dict[str, Any] = field(default_factory=dict)
    status_code: int | None = None
    heard: str = ""
    model_output: str = ""
    chunks: int = 0
    done: bool = False
    interrupted: bool = False
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    first_token_s: float | None = None
    elapsed_s: float = 0.0
    turn_id: str = ""

    def take(self, outcome: StreamOutcome) -> None:
        """Copy what the custom-LLM request gave (see :class:`StreamOutcome`)."""
        for name in (
            "status_code", "heard", "model_output", "chunks", "done", "interrupted",
            "finish_reason", "tool_calls", "error", "first_token_s", "elapsed_s",
        ):  # fmt: skip
            setattr(self, name, getattr(outcome, name))


@dataclass
class CallResult:
    """A whole driven call. ``failed``: it ended with an error ``endedReason``."""

    call_id: str
    call_type: str
    number: str | None
    ended_reason: str = ""
    greeting: str = ""
    assistant_answer: Any = None
    turns: list[Turn] = field(default_factory=list)
    said_by_control: list[str] = field(default_factory=list)
    messages: list[SentMessage] = field(default_factory=list)
    transcript: list[dict[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether VAPI would report the call as failed (assistant-request or pipeline)."""
        reason = self.ended_reason
        return reason.startswith(("pipeline-error", "assistant-request", "call.", "assistant-not"))

    @property
    def heard(self) -> list[str]:
        """What the caller heard per turn (the greeting is :attr:`greeting`)."""
        return [turn.heard for turn in self.turns]

    def sent(self, message_type: str) -> list[SentMessage]:
        """The server messages of one type, oldest first."""
        return [m for m in self.messages if m.type == message_type]

    @property
    def llm_requests(self) -> list[dict[str, Any]]:
        """The custom-LLM request bodies, oldest first."""
        return [turn.request for turn in self.turns if turn.request]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``failed`` and ``heard``."""
        return asdict(self) | {"failed": self.failed, "heard": self.heard}
