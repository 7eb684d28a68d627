"""VoIPBin's REST API under ``/v1.0``: the request pipeline and the endpoints by resource.

* :mod:`.request`: reading, auth, admission, latency, handling and recording a request;
* :mod:`.fields`: checks of ids, strings, Addresses and variables, list paging;
* :mod:`.customer_flows`, :mod:`.calls`, :mod:`.sessions`: the endpoints (``ROUTES``).
"""

from __future__ import annotations

from services.channels.voipbin.fake.rest import calls, customer_flows, sessions
from services.channels.voipbin.fake.rest.request import Handler

__all__ = ["API_ROUTES"]

API_ROUTES: list[tuple[str, str, Handler]] = [
    *customer_flows.ROUTES,
    *calls.ROUTES,
    *sessions.ROUTES,
]
"""Every API route as ``(method, path relative to /v1.0, handler)``, in registration order."""
