"""The simulator's objects are objects Stripe could send: every field the pinned API version always
sends, valid values (checked against tests/fixtures/stripe/fields.json), and Stripe's nested expand[]."""
from __future__ import annotations

from typing import Any

import pytest
import requests
import stripe

from simulator import SimConfig, SimServer
from simulator.client import SimClient
from tests.fixtures.stripe import api_version, problems
from tests.support.simulator import API_KEY, Catalog, WebhookEndpoint


def _get(server: SimServer, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{server.url}{path}", params=params, auth=(API_KEY, ""), timeout=10)


@pytest.fixture
def shop(client: stripe.StripeClient, sim: SimClient, catalog: Catalog) -> dict[str, Any]:
    """One session in each state, one-time and recurring prices, twelve line items on the open one."""
    one_time = catalog.product("prod_shape", tax_behavior="exclusive")
    monthly = catalog.product("prod_monthly", interval="month")
    extras = [catalog.product(f"prod_extra_{n}", unit_amount=100 + n) for n in range(11)]

    def session(prices: list[str], mode: str = "payment", **extra: Any) -> str:
        return client.v1.checkout.sessions.create({  # type: ignore[arg-type]
            "mode": mode, "success_url": "https://shop.example/ok",
            "line_items": [{"price": price, "quantity": 1} for price in prices], **extra}).id

    opened = session([one_time, *extras], customer_email="jenny@example.com", client_reference_id="u_1")
    paid = session([one_time], automatic_tax={"enabled": True})
    sim.post(f"/sim/checkout/sessions/{paid}/complete", {"outcome": "paid", "name": "Jenny"})
    subscribed = session([monthly], mode="subscription")
    sim.post(f"/sim/checkout/sessions/{subscribed}/complete", {"outcome": "async_pending"})
    sim.post(f"/sim/checkout/sessions/{subscribed}/complete", {"outcome": "async_failed"})
    expired = session([one_time])
    sim.post(f"/sim/checkout/sessions/{expired}/expire")
    return {"sessions": [opened, paid, subscribed, expired], "open": opened, "prices": [one_time, monthly]}


def test_the_field_lists_are_those_of_the_version_the_simulator_speaks() -> None:
    assert api_version() == SimConfig().api_version


def test_sessions_in_every_state_have_every_field_with_valid_values(sim_server: SimServer,
                                                                    shop: dict[str, Any]) -> None:
    for session_id in shop["sessions"]:
        plain = _get(sim_server, f"/v1/checkout/sessions/{session_id}").json()
        expanded = _get(sim_server, f"/v1/checkout/sessions/{session_id}",
                        **{"expand[]": "line_items.data.price.product"}).json()

        assert problems(plain, "checkout.session") == []
        assert problems(expanded, "checkout.session") == []
    listed = _get(sim_server, "/v1/checkout/sessions", limit=100).json()["data"]
    assert len(listed) == 4 and all(problems(s, "checkout.session") == [] for s in listed)
    assert {s["ui_mode"] for s in listed} == {"hosted_page"}


def test_line_items_prices_and_products_have_every_field(sim_server: SimServer, shop: dict[str, Any]) -> None:
    items = _get(sim_server, f"/v1/checkout/sessions/{shop['open']}/line_items", limit=100).json()["data"]
    expanded = _get(sim_server, f"/v1/checkout/sessions/{shop['open']}/line_items",
                    **{"expand[]": "data.price.product"}).json()["data"]
    prices = _get(sim_server, "/v1/prices", limit=100, **{"expand[]": "data.product"}).json()["data"]
    products = _get(sim_server, "/v1/products", limit=100).json()["data"]

    assert len(items) == 12 and len(prices) == 13 and len(products) == 13
    found = [problem for document, kind in [*((i, "item") for i in items + expanded),
                                            *((p, "price") for p in prices), *((p, "product") for p in products)]
             for problem in problems(document, kind)]
    assert found == []
    assert isinstance(expanded[0]["price"]["product"], dict) and isinstance(items[0]["price"]["product"], str)


def test_events_and_what_the_webhook_carries_have_every_field(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": ["*"]})
    catalog.product("prod_evented")
    client.v1.products.update("prod_evented", {"name": "Renamed"})
    price = client.v1.prices.list({"product": "prod_evented"}).data[0].id
    session = client.v1.checkout.sessions.create({"mode": "payment", "line_items": [{"price": price, "quantity": 1}]})
    sim.post(f"/sim/checkout/sessions/{session.id}/complete", {"outcome": "async_pending"})
    sim.post(f"/sim/checkout/sessions/{session.id}/complete", {"outcome": "async_succeeded"})
    assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]

    listed = sim.get("/v1/events", {"limit": 100})["data"]
    delivered = [received.event for received in endpoint.received]

    assert {e["type"] for e in listed} == {"product.created", "product.updated", "price.created",
                                           "checkout.session.completed", "checkout.session.async_payment_succeeded"}
    assert len(delivered) == len(listed)
    assert [p for event in listed + delivered for p in problems(event, "event")] == []


def test_webhook_endpoints_have_every_field(client: stripe.StripeClient, sim: SimClient,
                                            endpoint: WebhookEndpoint) -> None:
    created = sim.post("/v1/webhook_endpoints", {"url": endpoint.url, "enabled_events": ["*"]})
    updated = sim.post(f"/v1/webhook_endpoints/{created['id']}", {"disabled": True})
    listed = sim.get("/v1/webhook_endpoints")["data"]
    deleted = sim.delete(f"/v1/webhook_endpoints/{created['id']}")

    assert [p for document in [created, updated, *listed] for p in problems(document, "webhook_endpoint")] == []
    assert created["secret"].startswith("whsec_") and "secret" not in updated
    assert deleted == {"id": created["id"], "object": "webhook_endpoint", "deleted": True}


# -- expand[] ------------------------------------------------------------------------------------

def test_a_session_retrieved_with_line_items_product_embeds_the_first_page(
        client: stripe.StripeClient, shop: dict[str, Any]) -> None:
    session = client.v1.checkout.sessions.retrieve(shop["open"], {"expand": ["line_items.data.price.product"]})

    page = session.line_items
    assert (page.object, len(page.data), page.has_more) == ("list", 10, True)
    assert page.url == f"/v1/checkout/sessions/{shop['open']}/line_items"
    assert page.data[0].price.product.object == "product" and page.data[0].price.product.id == "prod_shape"
    rest = client.v1.checkout.sessions.line_items.list(shop["open"], {"starting_after": page.data[-1].id})
    assert len(rest.data) == 2 and rest.has_more is False


@pytest.mark.parametrize(("expand", "product_is_object"), [
    ("line_items", False), ("line_items.data.price", False), ("line_items.data.price.product", True)])
def test_every_prefix_of_the_path_expands_what_it_names(sim_server: SimServer, shop: dict[str, Any], expand: str,
                                                        product_is_object: bool) -> None:
    body = _get(sim_server, f"/v1/checkout/sessions/{shop['open']}", **{"expand[]": expand}).json()

    assert body["line_items"]["object"] == "list"
    assert isinstance(body["line_items"]["data"][0]["price"]["product"], dict) is product_is_object


def test_sessions_list_expands_each_sessions_line_items(sim_server: SimServer, shop: dict[str, Any]) -> None:
    listed = _get(sim_server, "/v1/checkout/sessions", **{"expand[]": "data.line_items"}).json()["data"]

    assert all(s["line_items"]["object"] == "list" for s in listed)


@pytest.mark.parametrize(("path", "expand", "message"), [
    ("/v1/checkout/sessions/{open}", "line_items.data.price.product.default_price",
     "You cannot expand more than 4 levels of a property. Property: line_items.data.price.product.default_price"),
    ("/v1/checkout/sessions/{open}", "customer_details", "This property cannot be expanded (customer_details)."),
    ("/v1/checkout/sessions/{open}", "line_items.data.tax_rates",
     "This property cannot be expanded (line_items.data.tax_rates)."),
    ("/v1/checkout/sessions/{open}/line_items", "data.price.product.x.y",
     "You cannot expand more than 4 levels of a property. Property: data.price.product.x.y"),
    ("/v1/prices", "product", "This property cannot be expanded (product)."),
    ("/v1/products", "data.default_price", "This property cannot be expanded (data.default_price)."),
    ("/v1/events", "data.object", "This property cannot be expanded (data.object)."),
])
def test_expanding_too_deep_or_what_cannot_expand_is_stripes_400(sim_server: SimServer, shop: dict[str, Any],
                                                                  path: str, expand: str, message: str) -> None:
    response = _get(sim_server, path.format(open=shop["open"]), **{"expand[]": expand})

    assert response.status_code == 400
    assert response.json() == {"error": {"type": "invalid_request_error", "message": message,
                                         "code": "parameter_invalid", "param": "expand"}}


def test_stripe_python_reads_the_expanded_session_as_it_reads_stripes(client: stripe.StripeClient,
                                                                     shop: dict[str, Any]) -> None:
    session = client.v1.checkout.sessions.retrieve(shop["open"], {"expand": ["line_items"]})

    assert isinstance(session.line_items, stripe.ListObject)
    assert isinstance(session.line_items.data[0], stripe.LineItem)


def test_creating_expands_what_it_returns(client: stripe.StripeClient) -> None:
    client.v1.products.create({"id": "prod_made", "name": "Made"})

    price = client.v1.prices.create({"product": "prod_made", "currency": "usd", "unit_amount": 500,
                                     "expand": ["product"]})
    session = client.v1.checkout.sessions.create({"mode": "payment", "line_items": [{"price": price.id, "quantity": 2}],
                                                  "expand": ["line_items.data.price.product"]})
    expired = client.v1.checkout.sessions.expire(session.id, {"expand": ["line_items"]})

    assert price.product.id == "prod_made"
    assert session.line_items.data[0].price.product.name == "Made" and session.line_items.data[0].quantity == 2
    assert expired.status == "expired" and len(expired.line_items.data) == 1


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/products", {"name": "Never"}), ("/v1/webhook_endpoints", {"url": "https://shop.example/hook",
                                                                    "enabled_events[]": "*"}),
    ("/v1/accounts", {"type": "standard"})])
def test_a_write_with_a_bad_expand_is_refused_before_it_writes(sim_server: SimServer, path: str,
                                                               body: dict[str, str]) -> None:
    body = {**body, "expand[]": "nothing"}

    response = requests.post(f"{sim_server.url}{path}", data=body, auth=(API_KEY, ""), timeout=10)
    listed = _get(sim_server, path).json()["data"]

    assert response.status_code == 400 and response.json()["error"]["param"] == "expand"
    assert listed == []
