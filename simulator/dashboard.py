"""``/sim``: what Stripe's Dashboard and Checkout page do, delivery control and faults.

No API key; bodies are forms or JSON. The buyer's actions (add or remove the cross-sell, pay,
let the session expire) create the events Stripe would.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from fulfillment.catalog import TAX_BEHAVIORS
from simulator import defaults
from simulator.context import DASHBOARD, current_sim, current_store, read_params
from simulator.errors import InvalidRequest
from simulator.faults import plan_faults
from simulator.resources import OUTCOMES
from simulator.store import Store

sim = Blueprint(DASHBOARD, __name__, url_prefix="/sim")


# The buyer's and delivery views find their object in whichever account has it (ids are unique),
# so a Checkout page link works without a Stripe-Account header; the Dashboard views act for the
# header's account, as a connected account's own Dashboard would.

def _session_store(session_id: str) -> Store:
    return current_sim().find(lambda store: store.has_session(session_id))


def _event_store(event_id: str) -> Store:
    return current_sim().find(lambda store: store.has_event(event_id) or store.has_thin_event(event_id))


def _endpoint_store(endpoint_id: str) -> Store:
    return current_sim().find(lambda store: endpoint_id in store.endpoints)


@sim.get("/health")
def health() -> Any:
    return {"object": "sim.health", "ok": True}


@sim.get("/account")
def get_account() -> Any:
    return current_store().account_json()


@sim.post("/account")
def update_account() -> Any:
    params = read_params()
    params.allow("default_tax_behavior")
    behavior = params.choice("default_tax_behavior", TAX_BEHAVIORS, required=True)
    assert behavior is not None
    return current_store().set_default_tax_behavior(behavior)


@sim.get("/products/<product_id>/cross_sell")
def get_cross_sell(product_id: str) -> Any:
    return current_store().cross_sell_json(product_id)


@sim.post("/products/<product_id>/cross_sell")
def set_cross_sell(product_id: str) -> Any:
    params = read_params()
    params.allow("product")
    target = params.string("product", required=True)
    assert target is not None
    return current_store().set_cross_sell(product_id, target)


@sim.delete("/products/<product_id>/cross_sell")
def remove_cross_sell(product_id: str) -> Any:
    return current_store().remove_cross_sell(product_id)


@sim.get("/checkout/sessions/<session_id>")
def sim_session(session_id: str) -> Any:
    return _session_store(session_id).sim_session_json(session_id)


@sim.post("/checkout/sessions/<session_id>/cross_sell")
def add_cross_sell_item(session_id: str) -> Any:
    params = read_params()
    params.allow("quantity")
    if params.integer("quantity", default=1) != 1:
        raise InvalidRequest("a cross-sell's quantity is fixed at 1", param="quantity")
    return _session_store(session_id).add_cross_sell(session_id)


@sim.delete("/checkout/sessions/<session_id>/cross_sell")
def remove_cross_sell_item(session_id: str) -> Any:
    return _session_store(session_id).remove_cross_sell_item(session_id)


@sim.post("/checkout/sessions/<session_id>/complete")
def complete_session(session_id: str) -> Any:
    params = read_params()
    params.allow("outcome", "email", "name")
    outcome = params.choice("outcome", OUTCOMES, default="paid")
    assert outcome is not None
    return _session_store(session_id).complete_session(session_id, outcome, email=params.string("email"),
                                                name=params.string("name"))


@sim.post("/checkout/sessions/<session_id>/expire")
def expire_session(session_id: str) -> Any:
    return _session_store(session_id).expire_session(session_id)


@sim.get("/events/<event_id>/deliveries")
def deliveries(event_id: str) -> Any:
    store = _event_store(event_id)
    if not store.has_thin_event(event_id):
        store.get_event(event_id)
    data = current_sim().dispatcher.deliveries_of(event_id)
    return {"object": "list", "data": data, "has_more": False, "url": f"/sim/events/{event_id}/deliveries"}


@sim.post("/events/<event_id>/resend")
def resend(event_id: str) -> Any:
    params = read_params()
    params.allow("webhook_endpoint")
    store = _event_store(event_id)
    if store.has_thin_event(event_id):  # a thin event: to its destinations (webhook_endpoint=ed_... for one)
        sent = current_sim().dispatcher.dispatch(store.get_thin_event(event_id), store.thin_targets(
            event_id, params.string("webhook_endpoint")), resend=True)
    else:
        event = store.get_event(event_id)
        endpoints = store.endpoints_for(event, params.string("webhook_endpoint"))
        sent = current_sim().dispatcher.dispatch(event, endpoints, resend=True)
    return {"object": "list", "data": [d.to_json() for d in sent], "has_more": False,
            "url": f"/sim/events/{event_id}/resend"}


@sim.post("/webhook_endpoints/<endpoint_id>/roll_secret")
def roll_secret(endpoint_id: str) -> Any:
    params = read_params()
    params.allow("expires_in_s", "secret")
    expires = params.integer("expires_in_s", minimum=0, maximum=7 * 24 * 3600, default=defaults.ROLLED_SECRET_TTL_S)
    assert expires is not None
    secret = params.string("secret")
    if secret is not None and not secret.startswith("whsec_"):
        raise InvalidRequest("secret must start with whsec_", param="secret")
    return _endpoint_store(endpoint_id).roll_secret(endpoint_id, expires_in_s=expires, secret=secret)


@sim.post("/deliveries/wait")
def wait_deliveries() -> Any:
    params = read_params()
    params.allow("timeout_s")
    timeout = params.integer("timeout_s", minimum=0, maximum=600, default=30)
    assert timeout is not None
    idle = current_sim().dispatcher.wait_idle(timeout)
    return {"object": "sim.deliveries", "idle": idle}


@sim.get("/stats")
def get_stats() -> Any:
    return current_sim().rate_limiter.stats()


@sim.delete("/stats")
def reset_stats() -> Any:
    current_sim().rate_limiter.reset()
    return current_sim().rate_limiter.stats()


@sim.get("/faults")
def get_faults() -> Any:
    return current_sim().faults.plan.to_json()


@sim.post("/faults")
def set_faults() -> Any:
    plan = plan_faults(read_params())
    current_sim().faults.set_plan(plan)
    return plan.to_json()


@sim.delete("/faults")
def clear_faults() -> Any:
    current_sim().faults.clear()
    return current_sim().faults.plan.to_json()
