"""The request being served, as the views see it: its simulator, its params, its request id.

Both surfaces (:mod:`simulator.api` and :mod:`simulator.dashboard`) read requests through these
helpers only; :mod:`simulator.app` wires them into the Flask app.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from simulator.expansion import Expansion, parse_expand
from simulator.forms import decode, parse_query
from simulator.params import Params
from simulator.resources import new_id
from simulator.simulation import Simulator
from simulator.store import RequestInfo, Store

EXTENSION = "crossfill_sim"  #: the key of the Simulator in ``app.extensions``
DASHBOARD = "sim"  #: the name of the /sim blueprint, whose POSTs may carry JSON


def current_sim() -> Simulator:
    """The simulator behind the app serving this request."""
    simulator: Simulator = current_app.extensions[EXTENSION]
    return simulator


def current_account() -> str | None:
    """The connected account this request acts for (``Stripe-Account``, or v2's ``Stripe-Context``, which
    SDKs send for a thin event's ``context``); None for the platform."""
    return request.headers.get("Stripe-Account") or request.headers.get("Stripe-Context") or None


def current_store() -> Store:
    """The objects of the account this request acts for.

    Raises:
        AccountInvalid: for a Stripe-Account that is not connected to the platform.
    """
    if "store" not in g:
        g.store = current_sim().store_for(current_account())
    store: Store = g.store
    return store


def request_id() -> str:
    """This request's ``req_...`` id (the ``Request-Id`` header, and ``event.request.id``)."""
    if "request_id" not in g:
        g.request_id = new_id("req_", 14)
    return str(g.request_id)


def read_params() -> Params:
    """The request's params: query string, then the form body of a POST (or a JSON body on /sim)."""
    if "params" not in g:
        pairs = parse_query(request.query_string)
        if request.method == "POST":
            if request.is_json and request.blueprint == DASHBOARD:
                values = _stringify(request.get_json(silent=True) or {}) | decode(pairs)
                g.params = Params(values)
            else:
                g.params = Params(decode(pairs + parse_query(request.get_data(cache=True))))
        else:
            g.params = Params(decode(pairs))
    params: Params = g.params
    return params


def _stringify(value: Any) -> Any:
    """JSON bodies of /sim calls, as strings the way a form would carry them."""
    if isinstance(value, dict):
        return {str(k): _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def request_info() -> RequestInfo:
    """The API request as events record it (``event.request``)."""
    return RequestInfo(id=request_id(), idempotency_key=request.headers.get("Idempotency-Key"))


def expansions(given: Params, kind: str) -> Expansion:
    """The ``expand[]`` paths asked for, checked against an object (or ``list:`` of objects) of *kind*.

    Raises:
        InvalidRequest: for a path too deep or a property that cannot be expanded.
    """
    return parse_expand(given.expand(), kind)
