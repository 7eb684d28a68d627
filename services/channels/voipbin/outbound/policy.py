"""How the voice output speaks and waits: voice, speaking rate, patience with call states."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.backoff import Backoff


@dataclass(frozen=True)
class VoicePolicy:
    """Speech settings and waits of the voice output channel."""

    language: str = "en-US"
    tts_provider: str = "elevenlabs"
    voice_id: str = ""
    chars_per_s: float = 15.0
    """Speaking rate assumed to estimate how long a text plays."""
    hangup_wait_max_s: float = 10.0
    """Longest wait for queued speech before an ending call is hung up."""
    state_wait_s: float = 10.0
    """How long 409 STATE_INVALID is retried while the call (or session) is not ready yet."""
    state_backoff_base_s: float = 0.2
    state_backoff_cap_s: float = 2.0

    def speech_ms(self, text: str) -> int:
        """Estimated playing time of `text`."""
        return int(len(text) / self.chars_per_s * 1000)

    def state_backoff_s(self, attempt: int) -> float:
        """Delay before retrying a request refused because the call was not ready."""
        backoff = Backoff(self.state_backoff_base_s, self.state_backoff_cap_s, jitter="equal")
        return backoff.delay_s(attempt)
