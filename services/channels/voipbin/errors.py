"""What a VoIPBin REST call can fail with, and how it is retried.

Errors come in an envelope `{"error": {"status", "reason", "message", ...}}`; 409
`STATE_INVALID` means the call is not `progressing` (yet, or any more).
"""

from __future__ import annotations

from services.common.backoff import RetryPolicy

STATE_INVALID = "STATE_INVALID"
NOT_FOUND = "RESOURCE_NOT_FOUND"


class VoipbinError(Exception):
    """VoIPBin answered with its error envelope: the request was not carried out."""

    def __init__(
        self, status: int, reason: str, message: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}"[:300])
        self.status = status
        self.reason = reason
        self.message = message[:200]
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """Rate limited or a server error: the same request may succeed later."""
        return self.status == 429 or self.status >= 500

    @property
    def state_invalid(self) -> bool:
        """409 `STATE_INVALID`: the call is not `progressing` (not yet, or no longer)."""
        return self.status == 409 or self.reason == STATE_INVALID

    @property
    def not_found(self) -> bool:
        return self.status == 404


class VoipbinUnreachable(Exception):
    """No usable answer (network error, timeout, a 5xx page without an envelope)."""


DEFAULT_RETRY = RetryPolicy(max_attempts=4, base_s=0.2, cap_s=5.0, budget_s=15.0)
"""429, 5xx and network errors: full jitter, never shorter than `Retry-After` (providers.md
1.1); a `Retry-After` beyond the budget ends the retries at once (the caller retries later)."""
