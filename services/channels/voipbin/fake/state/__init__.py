"""The fake's thread-safe state, one mixin per resource group over a shared store.

* :mod:`.store`: the lock, resources and records, the ``tm_*`` clock, lookups by id;
* :mod:`.records`: config, reset, admission (rate limit, ``fail_next``), the records;
* :mod:`.customer_flows`: the customer and flows with their Direct Hashes;
* :mod:`.calls`: calls, groupcalls, status moves, ``talk``;
* :mod:`.sessions`: speakings and transcribes.
"""

from __future__ import annotations

from services.channels.voipbin.fake.state.calls import CallsMixin
from services.channels.voipbin.fake.state.customer_flows import CustomerFlowsMixin
from services.channels.voipbin.fake.state.records import RecordsMixin, Refusal
from services.channels.voipbin.fake.state.sessions import SessionsMixin

__all__ = ["FakeVoipbinState", "Refusal"]


class FakeVoipbinState(RecordsMixin, CustomerFlowsMixin, CallsMixin, SessionsMixin):
    """Config, VoIPBin resources and records shared by the app and the tests (thread-safe).

    The app runs on uvicorn's loop thread while tests call in from theirs, so every access
    holds one lock and callers get deep copies. Operations raise :class:`ApiError` as the
    API would answer them (e.g. 404 for an unknown id, 409 ``STATE_INVALID``).
    """
