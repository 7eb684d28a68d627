"""State: the customer, and its flows with the Direct Hashes that route calls to them."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from services.channels.voipbin.fake.config import NIL_UUID
from services.channels.voipbin.fake.errors import ApiError
from services.channels.voipbin.fake.state.store import StateStore
from services.channels.voipbin.fake.wire import new_direct_hash


class CustomerFlowsMixin(StateStore):
    """The customer (webhook target) and flows (create, update, delete, Direct Hashes)."""

    def customer(self, *, with_secret: bool = False) -> dict[str, Any]:
        """The customer; ``with_secret`` gives the self view that ``GET /customer`` answers."""
        with self._lock:
            view = copy.deepcopy(self._customer)
            if with_secret:
                secret = self.config.webhook_secret
                view["webhook_secret"] = secret.get_secret_value() if secret else ""
            return view

    def update_customer(self, fields: dict[str, str]) -> dict[str, Any]:
        """Apply ``PUT /customer`` fields and return the customer (without the secret)."""
        with self._lock:
            self._customer.update(fields)
            self._customer["tm_update"] = self._stamp()
            return self.customer()

    def webhook_target(self) -> tuple[str, str]:
        """The customer's ``(webhook_uri, webhook_method)``."""
        with self._lock:
            return self._customer["webhook_uri"], self._customer["webhook_method"] or "POST"

    def _unique_hash(self) -> str:
        while (candidate := new_direct_hash()) in self._direct:
            pass  # 48 random bits: a clash is astronomically rare, but never reuse a live hash
        return candidate

    def _set_hash(self, flow: dict[str, Any], direct_hash: str) -> None:
        self._direct.pop(flow["direct_hash"], None)  # the old hash stops routing at once
        flow["direct_hash"] = direct_hash
        if direct_hash:
            self._direct[direct_hash] = flow["id"]

    def create_flow(
        self, name: str, detail: str, actions: list[dict[str, Any]], on_complete: str | None
    ) -> dict[str, Any]:
        """Store a new flow; it gets a Direct Hash unless ``empty_direct_hash`` is on."""
        with self._lock:
            now = self._stamp()
            flow: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "customer_id": self.config.customer_id,
                "type": "flow",
                "name": name,
                "detail": detail,
                "actions": actions,
                "on_complete_flow_id": on_complete or NIL_UUID,
                "direct_hash": "",
                "tm_create": now,
                "tm_update": now,
                "tm_delete": None,
            }
            self._flows[flow["id"]] = flow
            if not self.config.empty_direct_hash:
                self._set_hash(flow, self._unique_hash())
            return copy.deepcopy(flow)

    def update_flow(
        self,
        flow_id: str,
        name: str,
        detail: str,
        actions: list[dict[str, Any]],
        on_complete: str | None,
    ) -> dict[str, Any]:
        """Replace a flow's name, detail, actions and on-complete flow (``PUT``)."""
        with self._lock:
            flow = self._flow(flow_id)
            flow.update(name=name, detail=detail, actions=actions)
            flow.update(on_complete_flow_id=on_complete or NIL_UUID, tm_update=self._stamp())
            return copy.deepcopy(flow)

    def delete_flow(self, flow_id: str) -> dict[str, Any]:
        """Remove a flow (its Direct Hash stops routing) and return it with ``tm_delete``."""
        with self._lock:
            flow = self._flow(flow_id)
            self._set_hash(flow, "")
            del self._flows[flow_id]
            flow["tm_delete"] = self._stamp()
            return copy.deepcopy(flow)

    def regenerate_direct_hash(self, flow_id: str) -> dict[str, Any]:
        """Give a flow a new random Direct Hash, invalidating the old one."""
        with self._lock:
            flow = self._flow(flow_id)
            self._set_hash(flow, self._unique_hash())
            flow["tm_update"] = self._stamp()
            return copy.deepcopy(flow)

    def clear_direct_hash(self, flow_id: str) -> dict[str, Any]:
        """Empty a flow's Direct Hash (test control: plays a flow that has none yet)."""
        with self._lock:
            flow = self._flow(flow_id)
            self._set_hash(flow, "")
            return copy.deepcopy(flow)

    def flow(self, flow_id: str) -> dict[str, Any]:
        """A copy of one flow."""
        with self._lock:
            return copy.deepcopy(self._flow(flow_id))

    def flows(self) -> list[dict[str, Any]]:
        """Copies of all flows, oldest first."""
        with self._lock:
            return copy.deepcopy(list(self._flows.values()))

    def flow_for_hash(self, direct_hash: str) -> dict[str, Any]:
        """The flow a Direct Hash routes to; 404 "no route" if none."""
        with self._lock:
            flow_id = self._direct.get(direct_hash)
            if flow_id is None:
                raise ApiError(404, "RESOURCE_NOT_FOUND", f"No route for {direct_hash!r}.")
            return copy.deepcopy(self._flows[flow_id])
