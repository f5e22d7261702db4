"""Stripe's two Checkout read endpoints over real HTTP, serving documents a test hands it.

It answers as Stripe does for what crossfill asks: ``GET /v1/checkout/sessions/{id}`` (with
``expand[]=line_items`` / ``line_items.data.price.product``: the first page of line items embedded,
``has_more`` telling whether there are more) and ``GET /v1/checkout/sessions/{id}/line_items``
(``limit`` 1..100, default 10, ``starting_after``). The documents are served as given (Stripe's
fixtures, variants), so the worker is tested on Stripe's shapes, not on the simulator's.
"""
from __future__ import annotations

import copy
import threading
from collections import Counter
from typing import Any

from tests.support.fulfillment_fixtures import Reply, ScriptedServer, Seen

SESSION_ENDPOINT = "GET /v1/checkout/sessions/{id}"
LINE_ITEMS_ENDPOINT = "GET /v1/checkout/sessions/{id}/line_items"
EMBEDDED_PAGE = 10  #: line items a session embeds when ``line_items`` is expanded (the list's default limit)


class StripeDouble:
    """Sessions and their line items by session id; counts the requests per endpoint."""

    def __init__(self, *, embed: bool = True) -> None:
        self.embed = embed  #: whether expand[]=line_items is honoured (off: like a server that ignores it)
        self.sessions: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self.calls: Counter[str] = Counter()  #: requests by endpoint
        self.reads: Counter[str] = Counter()  #: requests by session id
        self.expands: list[list[str]] = []
        self._lock = threading.Lock()

    def put(self, session: dict[str, Any], items: list[dict[str, Any]]) -> None:
        self.sessions[session["id"]] = (session, items)

    def serve(self) -> ScriptedServer:
        return ScriptedServer(self)

    def __call__(self, request: Seen) -> Reply:
        parts = request.path.strip("/").split("/")
        if parts[:3] != ["v1", "checkout", "sessions"] or len(parts) not in (4, 5) or (
                len(parts) == 5 and parts[4] != "line_items"):
            return _error(404, f"Unrecognized request URL (GET: {request.path})")
        found = self.sessions.get(parts[3])
        if found is None:
            return _error(404, f"No such checkout.session: '{parts[3]}'", param="session")
        session, items = found
        with self._lock:
            self.calls[SESSION_ENDPOINT if len(parts) == 4 else LINE_ITEMS_ENDPOINT] += 1
            self.reads[parts[3]] += 1
        if len(parts) == 5:
            try:
                limit = int(request.query.get("limit", ["10"])[0])
            except ValueError:
                return _error(400, "Invalid integer: limit", param="limit")
            return Reply(200, _page(parts[3], items, request.query.get("starting_after", [None])[0], limit))
        expand = request.query.get("expand[]", [])
        with self._lock:
            self.expands.append(expand)
        body = copy.deepcopy(session)
        if self.embed and any(path == "line_items" or path.startswith("line_items.") for path in expand):
            body["line_items"] = _page(parts[3], items, None, EMBEDDED_PAGE)
        return Reply(200, body)


def _page(session_id: str, items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    start = 0 if after is None else [item["id"] for item in items].index(after) + 1
    return {"object": "list", "data": copy.deepcopy(items[start:start + limit]),
            "has_more": start + limit < len(items), "url": f"/v1/checkout/sessions/{session_id}/line_items"}


def _error(status: int, message: str, param: str | None = None) -> Reply:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param:
        error["param"] = param
    return Reply(status, {"error": error})
