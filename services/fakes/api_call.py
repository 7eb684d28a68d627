"""One request to a fake provider's REST API, read once: the endpoint and the recorder share it.

Each fake keeps its own checks (authentication, the provider's error bodies) and subclasses
`ApiCall` for what its endpoints read (a JSON object body, an id), so what is common stays
here: how the request is read, and how it is recorded for the tests' `requests` view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from fastapi import Request


@dataclass
class ApiCall:
    """A request's method, path, parameters and JSON payload (`malformed` when it is not
    JSON: then `payload` holds the start of the text), and how it authenticated."""

    hidden_query: ClassVar[Collection[str]] = ()
    """Query parameters left out of the record (a provider's credentials)."""
    malformed_chars: ClassVar[int | None] = None
    """How much of a body that is not JSON is kept (all of it: None)."""

    method: str
    path: str
    path_params: dict[str, str]
    query: dict[str, str]
    payload: Any
    malformed: bool
    auth: str = "none"

    @classmethod
    async def read(cls, request: Request) -> Self:
        """Read `request` once (see `hidden_query` and `malformed_chars`)."""
        raw = await request.body()
        payload: Any = None
        malformed = False
        if raw.strip():
            try:
                payload = json.loads(raw)
            except ValueError:
                payload, malformed = (
                    raw.decode("utf-8", errors="replace")[: cls.malformed_chars],
                    True,
                )
        query = {k: v for k, v in request.query_params.items() if k not in cls.hidden_query}
        path_params = {k: str(v) for k, v in request.path_params.items()}
        return cls(request.method, request.url.path, path_params, query, payload, malformed)

    def record(self, status: int) -> dict[str, Any]:
        """What the fake keeps of this request once it is answered with `status`."""
        return {
            "time": time.time(),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "body": self.payload,
            "auth": self.auth,
            "status": status,
        }
