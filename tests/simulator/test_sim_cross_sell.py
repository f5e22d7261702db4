"""Checkout cross-sells on the simulator: each rule of the seed, the buyer's actions, completion events."""
from __future__ import annotations

from typing import Any

import pytest
import stripe

from fulfillment.catalog import parse_catalog
from fulfillment.crosssell import CURRENCY, RECURRING_INTERVAL, SINGLE_PRICE, TAX_BEHAVIOR, UPSELLS_NON_RECURRING
from simulator import SimConfig, SimServer
from simulator.client import SimClient
from simulator.errors import RemoteError
from tests.support.simulator import API_KEY, Catalog


def _checkout(client: stripe.StripeClient, sim: SimClient, prices: list[str], *, mode: str = "payment",
              automatic_tax: bool = False, upsells: bool = False) -> dict[str, Any]:
    """Create a session and return the simulator's view of it (with the cross-sell decision)."""
    params: dict[str, Any] = {"mode": mode, "line_items": [{"price": p, "quantity": 1} for p in prices],
                              "automatic_tax": {"enabled": automatic_tax}}
    if upsells:
        params["sim"] = {"subscription_upsells": True}
    session = client.v1.checkout.sessions.create(params)  # type: ignore[arg-type]
    return sim.get(f"/sim/checkout/sessions/{session.id}")


def _failed(view: dict[str, Any]) -> list[str] | None:
    """None when the cross-sell is offered, else the rules it failed."""
    if view["cross_sell_offer"] is not None:
        return None
    return [rule for refusal in view["cross_sell_ineligible"] for rule in refusal["failed_rules"]]


@pytest.fixture
def pro(catalog: Catalog, sim: SimClient) -> str:
    """prod_pro, a one-time usd price, configured (in the Dashboard) to cross-sell prod_deploy."""
    price = catalog.product("prod_pro", unit_amount=4900)
    catalog.client.v1.products.create({"id": "prod_deploy", "name": "Professional Services: Deployment"})
    sim.post("/sim/products/prod_pro/cross_sell", {"product": "prod_deploy"})
    return price


def _deploy_price(client: stripe.StripeClient, **params: Any) -> str:
    body = {"product": "prod_deploy", "currency": "usd", "unit_amount": 15000, **params}
    return client.v1.prices.create(body).id  # type: ignore[arg-type]


# -- each rule alone removes the offer ------------------------------------------------------------------

def test_baseline_one_time_same_currency_price_is_offered(client: stripe.StripeClient, sim: SimClient,
                                                          pro: str) -> None:
    deploy = _deploy_price(client)

    view = _checkout(client, sim, [pro])

    assert view["cross_sell_offer"] == {"source_product": "prod_pro", "product": "prod_deploy", "price": deploy,
                                        "added": False, "line_item": None, "available": True}
    assert view["cross_sell_ineligible"] == []


def test_rule_1_a_second_active_price_alone_removes_the_offer(client: stripe.StripeClient, sim: SimClient,
                                                              pro: str) -> None:
    _deploy_price(client)
    _deploy_price(client, unit_amount=9900)

    assert _failed(_checkout(client, sim, [pro])) == [SINGLE_PRICE]


def test_rule_1_an_inactive_second_price_does_not_count(client: stripe.StripeClient, sim: SimClient,
                                                        pro: str) -> None:
    _deploy_price(client)
    _deploy_price(client, unit_amount=9900, active=False)

    assert _failed(_checkout(client, sim, [pro])) is None


def test_rule_2_another_currency_alone_removes_the_offer(client: stripe.StripeClient, sim: SimClient,
                                                         pro: str) -> None:
    _deploy_price(client, currency="eur")

    assert _failed(_checkout(client, sim, [pro])) == [CURRENCY]


def test_rule_3_a_recurring_price_in_payment_mode_alone_removes_the_offer(client: stripe.StripeClient,
                                                                          sim: SimClient, pro: str) -> None:
    _deploy_price(client, recurring={"interval": "month"})

    assert _failed(_checkout(client, sim, [pro])) == [RECURRING_INTERVAL]


def test_rule_3_another_interval_in_subscription_mode_alone_removes_the_offer(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, pro: str) -> None:
    yearly = catalog.product("prod_plan", interval="year")
    monthly_deploy = _deploy_price(client, recurring={"interval": "month"})

    refused = _checkout(client, sim, [pro, yearly], mode="subscription")
    client.v1.prices.create({"product": "prod_plan", "currency": "usd", "unit_amount": 100,
                             "recurring": {"interval": "month"}})
    monthly = client.v1.prices.list({"product": "prod_plan"}).data[0].id
    offered = _checkout(client, sim, [pro, monthly], mode="subscription")

    assert _failed(refused) == [RECURRING_INTERVAL]
    assert offered["cross_sell_offer"]["price"] == monthly_deploy


def test_rule_4_subscription_upsells_alone_remove_a_recurring_offer(client: stripe.StripeClient, sim: SimClient,
                                                                    catalog: Catalog, pro: str) -> None:
    monthly = catalog.product("prod_plan", interval="month")
    _deploy_price(client, recurring={"interval": "month"})

    without_upsells = _checkout(client, sim, [pro, monthly], mode="subscription")
    with_upsells = _checkout(client, sim, [pro, monthly], mode="subscription", upsells=True)

    assert _failed(without_upsells) is None
    assert _failed(with_upsells) == [UPSELLS_NON_RECURRING]


def test_rule_4_upsells_keep_a_one_time_offer(client: stripe.StripeClient, sim: SimClient, catalog: Catalog,
                                              pro: str) -> None:
    monthly = catalog.product("prod_plan", interval="month")
    _deploy_price(client)

    assert _failed(_checkout(client, sim, [pro, monthly], mode="subscription", upsells=True)) is None


def test_rule_5_automatic_tax_alone_removes_an_unspecified_tax_behavior(client: stripe.StripeClient,
                                                                        sim: SimClient, pro: str) -> None:
    _deploy_price(client)

    assert _failed(_checkout(client, sim, [pro])) is None
    assert _failed(_checkout(client, sim, [pro], automatic_tax=True)) == [TAX_BEHAVIOR]


def test_rule_5_the_account_default_tax_behavior_satisfies_it(client: stripe.StripeClient, sim: SimClient,
                                                              pro: str) -> None:
    _deploy_price(client)
    sim.post("/sim/account", {"default_tax_behavior": "exclusive"})

    assert _failed(_checkout(client, sim, [pro], automatic_tax=True)) is None


def test_rule_5_the_price_tax_behavior_satisfies_it(client: stripe.StripeClient, sim: SimClient, pro: str) -> None:
    _deploy_price(client, tax_behavior="inclusive")

    assert _failed(_checkout(client, sim, [pro], automatic_tax=True)) is None


def test_catalog_file_supplies_the_relation_and_the_default_tax_behavior() -> None:
    catalog = parse_catalog({"account": {"default_tax_behavior": "inclusive"},
                             "products": {"prod_pro": {"cross_sell": "prod_deploy"}}})
    with SimServer(SimConfig(catalog=catalog)) as server, SimClient(server.url, API_KEY) as sim:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": server.url}, max_network_retries=0)
        pro = Catalog(client).product("prod_pro")
        Catalog(client).product("prod_deploy")

        view = _checkout(client, sim, [pro], automatic_tax=True)

        assert sim.get("/sim/account")["default_tax_behavior"] == "inclusive"
        assert view["cross_sell_offer"]["product"] == "prod_deploy"


# -- which product's cross-sell is offered ----------------------------------------------------------------

def test_the_first_product_whose_cross_sell_passes_wins(client: stripe.StripeClient, sim: SimClient,
                                                        catalog: Catalog, pro: str) -> None:
    _deploy_price(client, currency="eur")
    team = catalog.product("prod_team")
    catalog.product("prod_training")
    sim.post("/sim/products/prod_team/cross_sell", {"product": "prod_training"})

    view = _checkout(client, sim, [pro, team])

    assert view["cross_sell_offer"]["source_product"] == "prod_team"
    assert view["cross_sell_ineligible"] == [{"source_product": "prod_pro", "product": "prod_deploy",
                                              "failed_rules": [CURRENCY]}]


def test_a_cross_sell_already_in_the_session_is_not_offered(client: stripe.StripeClient, sim: SimClient,
                                                            pro: str) -> None:
    deploy = _deploy_price(client)

    view = _checkout(client, sim, [pro, deploy])

    assert view["cross_sell_offer"] is None and view["cross_sell_ineligible"] == []


def test_configuring_unknown_products_is_404(sim: SimClient, pro: str) -> None:
    with pytest.raises(RemoteError) as caught:
        sim.post("/sim/products/prod_pro/cross_sell", {"product": "prod_ghost"})

    assert caught.value.status == 404


# -- the buyer -----------------------------------------------------------------------------------------------

def test_add_remove_add_again(client: stripe.StripeClient, sim: SimClient, pro: str) -> None:
    deploy = _deploy_price(client)
    session_id = _checkout(client, sim, [pro])["id"]
    path = f"/sim/checkout/sessions/{session_id}/cross_sell"

    # Given the buyer adds the cross-sell
    added = sim.post(path)
    items = list(client.v1.checkout.sessions.line_items.list(session_id).auto_paging_iter())
    # When they remove it
    removed = sim.delete(path)
    after_removal = client.v1.checkout.sessions.line_items.list(session_id).data
    # Then it is offered again, and can be added again as a new line item
    again = sim.post(path)

    assert [(item.price.id, item.quantity) for item in items] == [(pro, 1), (deploy, 1)]
    assert added["amount_total"] == 4900 + 15000 and added["cross_sell_offer"]["added"] is True
    assert added["cross_sell_offer"]["line_item"] == items[1].id
    assert removed["cross_sell_offer"]["available"] is True and [i.price.id for i in after_removal] == [pro]
    assert again["cross_sell_offer"]["line_item"] not in (None, items[1].id)
    assert again["line_item_count"] == 2


def test_a_second_add_is_400(client: stripe.StripeClient, sim: SimClient, pro: str) -> None:
    _deploy_price(client)
    session_id = _checkout(client, sim, [pro])["id"]
    sim.post(f"/sim/checkout/sessions/{session_id}/cross_sell")

    with pytest.raises(RemoteError) as caught:
        sim.post(f"/sim/checkout/sessions/{session_id}/cross_sell")

    assert caught.value.status == 400


def test_the_quantity_cannot_be_changed(client: stripe.StripeClient, sim: SimClient, pro: str) -> None:
    _deploy_price(client)
    session_id = _checkout(client, sim, [pro])["id"]

    with pytest.raises(RemoteError) as caught:
        sim.post(f"/sim/checkout/sessions/{session_id}/cross_sell", {"quantity": 2})

    assert (caught.value.status, caught.value.body["error"]["param"]) == (400, "quantity")


def test_adding_without_an_offer_or_removing_nothing_is_400(client: stripe.StripeClient, sim: SimClient,
                                                            pro: str) -> None:
    session_id = _checkout(client, sim, [pro])["id"]  # prod_deploy has no price: rule 1 fails

    for call in (sim.post, sim.delete):
        with pytest.raises(RemoteError) as caught:
            call(f"/sim/checkout/sessions/{session_id}/cross_sell")
        assert caught.value.status == 400


def test_removing_the_configuration_only_affects_new_sessions(client: stripe.StripeClient, sim: SimClient,
                                                              pro: str) -> None:
    _deploy_price(client)
    existing = _checkout(client, sim, [pro])["id"]

    sim.delete("/sim/products/prod_pro/cross_sell")
    added = sim.post(f"/sim/checkout/sessions/{existing}/cross_sell")
    new = _checkout(client, sim, [pro])

    assert added["cross_sell_offer"]["added"] is True
    assert new["cross_sell_offer"] is None and new["cross_sell_ineligible"] == []


def test_a_completed_session_cannot_change(client: stripe.StripeClient, sim: SimClient, pro: str) -> None:
    _deploy_price(client)
    session_id = _checkout(client, sim, [pro])["id"]
    sim.post(f"/sim/checkout/sessions/{session_id}/complete")

    with pytest.raises(RemoteError) as caught:
        sim.post(f"/sim/checkout/sessions/{session_id}/cross_sell")

    assert caught.value.status == 400


# -- completion and its events ----------------------------------------------------------------------------

def _events(client: stripe.StripeClient, session_id: str) -> list[tuple[str, str]]:
    """(type, payment_status) of the session's checkout events, oldest first."""
    listed = client.v1.events.list({"type": "checkout.session.*", "limit": 100}).data
    return [(e.type, e.data.object.payment_status) for e in reversed(listed) if e.data.object.id == session_id]


@pytest.mark.parametrize(("outcome", "status", "payment_status", "events"), [
    ("paid", "complete", "paid", [("checkout.session.completed", "paid")]),
    ("no_payment_required", "complete", "no_payment_required",
     [("checkout.session.completed", "no_payment_required")]),
    ("async_pending", "complete", "unpaid", [("checkout.session.completed", "unpaid")]),
    ("async_succeeded", "complete", "paid", [("checkout.session.completed", "unpaid"),
                                             ("checkout.session.async_payment_succeeded", "paid")]),
    ("async_failed", "complete", "unpaid", [("checkout.session.completed", "unpaid"),
                                            ("checkout.session.async_payment_failed", "unpaid")]),
])
def test_complete_outcomes_set_status_and_create_stripes_events(
        client: stripe.StripeClient, sim: SimClient, pro: str, outcome: str, status: str, payment_status: str,
        events: list[tuple[str, str]]) -> None:
    session_id = _checkout(client, sim, [pro])["id"]

    sim.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": outcome, "email": "buyer@shop.example"})
    session = client.v1.checkout.sessions.retrieve(session_id)

    assert (session.status, session.payment_status) == (status, payment_status)
    assert session.customer_details.email == "buyer@shop.example"
    assert _events(client, session_id) == events


def test_a_pending_payment_settles_later(client: stripe.StripeClient, sim: SimClient, pro: str) -> None:
    session_id = _checkout(client, sim, [pro])["id"]
    sim.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": "async_pending"})

    sim.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": "async_succeeded"})

    assert _events(client, session_id) == [("checkout.session.completed", "unpaid"),
                                           ("checkout.session.async_payment_succeeded", "paid")]
    with pytest.raises(RemoteError):
        sim.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": "async_failed"})


def test_completion_events_carry_the_session_without_line_items(client: stripe.StripeClient, sim: SimClient,
                                                                pro: str) -> None:
    session_id = _checkout(client, sim, [pro])["id"]
    sim.post(f"/sim/checkout/sessions/{session_id}/complete")

    event = client.v1.events.list({"type": "checkout.session.completed"}).data[0]

    assert event.data.object.id == session_id and "line_items" not in event.data.object
    assert event.request.id is None


def test_expire_creates_the_expired_event_and_closes_the_session(client: stripe.StripeClient, sim: SimClient,
                                                                 pro: str) -> None:
    session_id = _checkout(client, sim, [pro])["id"]

    sim.post(f"/sim/checkout/sessions/{session_id}/expire")

    assert client.v1.checkout.sessions.retrieve(session_id).status == "expired"
    assert _events(client, session_id) == [("checkout.session.expired", "unpaid")]
    for action in ("complete", "expire"):
        with pytest.raises(RemoteError) as caught:
            sim.post(f"/sim/checkout/sessions/{session_id}/{action}")
        assert caught.value.status == 400


def test_stripes_expire_endpoint_works_too(client: stripe.StripeClient, sim: SimClient, pro: str) -> None:
    session_id = _checkout(client, sim, [pro])["id"]

    expired = client.v1.checkout.sessions.expire(session_id)

    assert expired.status == "expired"


def test_unknown_outcome_is_400_naming_outcome(client: stripe.StripeClient, sim: SimClient, pro: str) -> None:
    session_id = _checkout(client, sim, [pro])["id"]

    with pytest.raises(RemoteError) as caught:
        sim.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": "maybe"})

    assert caught.value.body["error"]["param"] == "outcome"


def test_sim_endpoints_accept_json_bodies(client: stripe.StripeClient, sim_server: SimServer, pro: str) -> None:
    import requests

    session_id = _checkout(client, SimClient(sim_server.url, API_KEY), [pro])["id"]

    response = requests.post(f"{sim_server.url}/sim/checkout/sessions/{session_id}/complete",
                             json={"outcome": "no_payment_required"}, timeout=5)

    assert response.json()["payment_status"] == "no_payment_required"


