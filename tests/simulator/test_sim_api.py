"""stripe-python drives the simulator's /v1 API unchanged: objects, lists, pagination, errors."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
import stripe

from simulator import SimServer
from tests.support.simulator import API_KEY, Catalog


def _session(client: stripe.StripeClient, prices: list[str], **extra: object) -> stripe.checkout.Session:
    params = {"mode": "payment", "success_url": "https://shop.example/ok",
              "line_items": [{"price": price, "quantity": 1} for price in prices], **extra}
    return client.v1.checkout.sessions.create(params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def paging_server() -> Iterator[SimServer]:
    """One simulator for the read-only pagination tests (building 100 products takes a while)."""
    with SimServer() as server:
        yield server


@pytest.fixture(scope="module")
def paging_client(paging_server: SimServer) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": paging_server.url}, max_network_retries=0)


@pytest.fixture(scope="module")
def big_session(paging_client: stripe.StripeClient) -> stripe.checkout.Session:
    """A session with 100 line items (Stripe's most in payment mode), one product each."""
    prices = [Catalog(paging_client).product(f"prod_item_{n:03d}", unit_amount=100 + n) for n in range(100)]
    return _session(paging_client, prices)


def test_product_with_chosen_id_price_and_session_have_stripe_shapes(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"id": "prod_pro", "name": "Togethere Professional",
                                         "metadata": {"tier": "pro"}})
    price = client.v1.prices.create({"product": "prod_pro", "currency": "usd", "unit_amount": 4900,
                                     "recurring": {"interval": "month"}, "tax_behavior": "exclusive"})
    session = client.v1.checkout.sessions.create({
        "mode": "subscription", "line_items": [{"price": price.id, "quantity": 2}],
        "automatic_tax": {"enabled": True}, "metadata": {"order": "42"}, "client_reference_id": "user_7",
        "customer_email": "jenny@example.com", "success_url": "https://shop.example/ok"})

    assert (product.id, product.object, product.metadata["tier"]) == ("prod_pro", "product", "pro")
    assert price.id.startswith("price_") and price.type == "recurring"
    assert (price.recurring.interval, price.recurring.interval_count) == ("month", 1)
    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert (session.mode, session.status, session.payment_status) == ("subscription", "open", "unpaid")
    assert (session.currency, session.amount_total, session.livemode) == ("usd", 9800, False)
    assert session.automatic_tax.enabled is True
    assert session.customer_details.email == "jenny@example.com"
    assert (session.metadata["order"], session.client_reference_id) == ("42", "user_7")
    assert session.url.endswith(f"/sim/checkout/sessions/{session.id}")
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id
    assert client.v1.products.retrieve("prod_pro").name == "Togethere Professional"
    assert client.v1.products.update("prod_pro", {"active": False}).active is False


def test_global_style_api_key_and_api_base_work_too(sim_server: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    monkeypatch.setattr(stripe, "api_base", sim_server.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    stripe.Product.create(id="prod_global", name="Global")
    price = stripe.Price.create(product="prod_global", currency="usd", unit_amount=500)
    session = stripe.checkout.Session.create(mode="payment", line_items=[{"price": price.id, "quantity": 3}])

    items = stripe.checkout.Session.list_line_items(session.id)

    assert [(item.price.id, item.quantity, item.amount_total) for item in items] == [(price.id, 3, 1500)]


def test_line_items_carry_every_documented_field(client: stripe.StripeClient, catalog: Catalog) -> None:
    price = catalog.product("prod_fields", unit_amount=250, tax_behavior="inclusive")
    session = client.v1.checkout.sessions.create({"mode": "payment", "line_items": [{"price": price, "quantity": 4}]})

    item = client.v1.checkout.sessions.line_items.list(session.id).data[0]

    assert item.id.startswith("li_") and item.object == "item"
    assert (item.amount_subtotal, item.amount_total, item.amount_discount, item.amount_tax) == (1000, 1000, 0, 0)
    assert (item.currency, item.description, item.quantity, item.metadata.to_dict()) == (
        "usd", "Prod Fields", 4, {})
    assert (item.price.id, item.price.product, item.price.type, item.price.currency) == (
        price, "prod_fields", "one_time", "usd")
    assert (item.price.unit_amount, item.price.tax_behavior, item.price.recurring) == (250, "inclusive", None)


def test_auto_paging_iter_reads_all_100_line_items_in_order(paging_client: stripe.StripeClient,
                                                           big_session: stripe.checkout.Session) -> None:
    first = paging_client.v1.checkout.sessions.line_items.list(big_session.id, {"limit": 7})

    items = list(first.auto_paging_iter())

    assert len(first.data) == 7 and first.has_more
    assert first.url == f"/v1/checkout/sessions/{big_session.id}/line_items"
    assert [item.price.product for item in items] == [f"prod_item_{n:03d}" for n in range(100)]
    assert len({item.id for item in items}) == 100


def test_default_limit_is_ten_and_max_page_is_100(paging_client: stripe.StripeClient,
                                                  big_session: stripe.checkout.Session) -> None:
    default = paging_client.v1.checkout.sessions.line_items.list(big_session.id)
    biggest = paging_client.v1.checkout.sessions.line_items.list(big_session.id, {"limit": 100})
    almost = paging_client.v1.checkout.sessions.line_items.list(big_session.id, {"limit": 99})

    assert (len(default.data), len(biggest.data), biggest.has_more) == (10, 100, False)
    assert (len(almost.data), almost.has_more) == (99, True)


def test_ending_before_pages_backwards(paging_client: stripe.StripeClient,
                                      big_session: stripe.checkout.Session) -> None:
    line_items = paging_client.v1.checkout.sessions.line_items
    everything = list(line_items.list(big_session.id, {"limit": 100}).auto_paging_iter())
    cursor = everything[25].id

    before = line_items.list(big_session.id, {"limit": 10, "ending_before": cursor})
    backwards = list(before.auto_paging_iter())

    assert [item.id for item in before.data] == [item.id for item in everything[15:25]]
    assert before.has_more
    assert [item.id for item in backwards] == [item.id for item in reversed(everything[:25])]


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_limit_out_of_bounds_is_400_naming_limit(paging_client: stripe.StripeClient,
                                                 big_session: stripe.checkout.Session, limit: int) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        paging_client.v1.checkout.sessions.line_items.list(big_session.id, {"limit": limit})

    assert caught.value.http_status == 400 and caught.value.param == "limit"


def test_both_cursors_or_an_unknown_cursor_is_400(paging_client: stripe.StripeClient,
                                                  big_session: stripe.checkout.Session) -> None:
    with pytest.raises(stripe.InvalidRequestError) as both:
        paging_client.v1.checkout.sessions.line_items.list(
            big_session.id, {"starting_after": "li_a", "ending_before": "li_b"})
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        paging_client.v1.checkout.sessions.line_items.list(big_session.id, {"starting_after": "li_nope"})

    assert both.value.http_status == unknown.value.http_status == 400
    assert unknown.value.param == "starting_after"


def test_expanding_line_items_gives_only_the_first_page(paging_client: stripe.StripeClient,
                                                        big_session: stripe.checkout.Session) -> None:
    session = paging_client.v1.checkout.sessions.retrieve(big_session.id, {"expand": ["line_items"]})
    plain = paging_client.v1.checkout.sessions.retrieve(big_session.id)

    assert len(session.line_items.data) == 10 and session.line_items.has_more
    assert "line_items" not in plain


def test_expand_price_product_on_line_items(paging_client: stripe.StripeClient,
                                            big_session: stripe.checkout.Session) -> None:
    page = paging_client.v1.checkout.sessions.line_items.list(
        big_session.id, {"limit": 2, "expand": ["data.price.product"]})

    assert [item.price.product.object for item in page.data] == ["product", "product"]
    assert page.data[0].price.product.id == "prod_item_000"


def test_expanding_something_else_is_400_naming_expand(paging_client: stripe.StripeClient,
                                                        big_session: stripe.checkout.Session) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        paging_client.v1.checkout.sessions.retrieve(big_session.id, {"expand": ["customer"]})

    assert caught.value.param == "expand"


def test_list_prices_filters_by_product_and_active(client: stripe.StripeClient, catalog: Catalog) -> None:
    catalog.product("prod_a", prices=2)
    catalog.product("prod_b")
    client.v1.prices.create({"product": "prod_a", "currency": "usd", "unit_amount": 1, "active": False})

    of_a = client.v1.prices.list({"product": "prod_a"})
    active_of_a = client.v1.prices.list({"product": "prod_a", "active": True})

    assert (len(of_a.data), len(active_of_a.data)) == (3, 2)
    assert {price.product for price in of_a.data} == {"prod_a"}


def test_events_list_filters_by_type_types_and_created(client: stripe.StripeClient, catalog: Catalog) -> None:
    catalog.product("prod_e1")
    catalog.product("prod_e2")

    products = client.v1.events.list({"type": "product.created"})
    both = client.v1.events.list({"types": ["product.created", "price.created"], "limit": 100})
    wildcard = client.v1.events.list({"type": "price.*"})
    first = both.data[-1]
    since = client.v1.events.list({"created": {"gte": first.created}, "limit": 100})
    nothing = client.v1.events.list({"created": {"lt": first.created}})

    assert [e.data.object.id for e in products.data] == ["prod_e2", "prod_e1"]  # newest first
    assert len(both.data) == 4 and len(wildcard.data) == 2
    assert len(since.data) == 4 and nothing.data == []
    assert client.v1.events.retrieve(first.id).type == "product.created"
    assert first.id.startswith("evt_") and first.object == "event" and first.livemode is False


def test_events_paginate_with_starting_after(client: stripe.StripeClient, catalog: Catalog) -> None:
    for n in range(6):
        catalog.product(f"prod_page_{n}")

    events = list(client.v1.events.list({"type": "product.created", "limit": 4}).auto_paging_iter())

    assert [e.data.object.id for e in events] == [f"prod_page_{n}" for n in reversed(range(6))]


def test_idempotency_key_replays_the_same_object(client: stripe.StripeClient) -> None:
    key = str(uuid.uuid4())

    first = client.v1.products.create({"name": "Once"}, {"idempotency_key": key})
    again = client.v1.products.create({"name": "Once"}, {"idempotency_key": key})

    assert first.id == again.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(client.v1.events.list({"type": "product.created"}).data) == 1


def test_idempotency_key_with_other_params_is_an_idempotency_error(client: stripe.StripeClient) -> None:
    key = str(uuid.uuid4())
    client.v1.products.create({"name": "Once"}, {"idempotency_key": key})

    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.products.create({"name": "Other"}, {"idempotency_key": key})

    assert caught.value.http_status == 400


def test_a_failed_request_is_replayed_with_its_error(client: stripe.StripeClient) -> None:
    key = str(uuid.uuid4())
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create({"product": "prod_missing", "currency": "usd", "unit_amount": 1},
                                {"idempotency_key": key})
    client.v1.products.create({"id": "prod_missing", "name": "Now here"})

    with pytest.raises(stripe.InvalidRequestError) as replay:
        client.v1.prices.create({"product": "prod_missing", "currency": "usd", "unit_amount": 1},
                                {"idempotency_key": key})

    assert replay.value.http_status == 404


def test_missing_objects_are_404_resource_missing(client: stripe.StripeClient) -> None:
    for call in (lambda: client.v1.checkout.sessions.retrieve("cs_test_nope"),
                 lambda: client.v1.checkout.sessions.line_items.list("cs_test_nope"),
                 lambda: client.v1.products.retrieve("prod_nope"),
                 lambda: client.v1.prices.retrieve("price_nope"),
                 lambda: client.v1.events.retrieve("evt_nope")):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            call()
        assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


@pytest.mark.parametrize(("params", "param"), [
    ({"mode": "payment"}, "line_items"),
    ({"mode": "bogus", "line_items": [{"price": "price_x", "quantity": 1}]}, "mode"),
    ({"mode": "payment", "line_items": [{"price": "price_x", "quantity": 1}]}, "line_items[0][price]"),
    ({"mode": "payment", "line_items": [{"price": "price_x"}]}, "line_items[0][quantity]"),
    ({"mode": "payment", "colour": "red"}, "colour"),
])
def test_bad_session_params_are_400_naming_the_param(client: stripe.StripeClient, params: dict[str, object],
                                                     param: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.create(params)  # type: ignore[arg-type]

    assert caught.value.http_status in (400, 404) and caught.value.param == param


def test_session_refuses_mixed_currencies_and_recurring_in_payment_mode(client: stripe.StripeClient,
                                                                        catalog: Catalog) -> None:
    usd = catalog.product("prod_usd")
    eur = catalog.product("prod_eur", currency="eur")
    monthly = catalog.product("prod_monthly", interval="month")

    for prices, mode in (([usd, eur], "payment"), ([monthly], "payment"), ([usd], "subscription")):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            _session(client, prices, mode=mode)
        assert caught.value.http_status == 400


def test_taken_product_id_is_400(client: stripe.StripeClient) -> None:
    client.v1.products.create({"id": "prod_twice", "name": "One"})

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.products.create({"id": "prod_twice", "name": "Two"})

    assert caught.value.code == "resource_already_exists"


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer sk_live_123", "Bearer pk_test_123",
                                           "Token sk_test_123"])
def test_missing_or_malformed_key_is_401(sim_server: SimServer, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = requests.get(f"{sim_server.url}/v1/products/prod_x", headers=headers, timeout=5)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_stripe_python_maps_a_bad_key_to_authentication_error(sim_server: SimServer) -> None:
    bad = stripe.StripeClient("sk_live_nope", base_addresses={"api": sim_server.url}, max_network_retries=0)

    with pytest.raises(stripe.AuthenticationError):
        bad.v1.products.retrieve("prod_x")


def test_basic_auth_with_the_key_as_user_works(sim_server: SimServer) -> None:
    response = requests.post(f"{sim_server.url}/v1/products", data={"name": "curl"}, auth=(API_KEY, ""), timeout=5)

    assert response.status_code == 200 and response.json()["id"].startswith("prod_")


def test_unknown_path_is_a_stripe_shaped_404(sim_server: SimServer) -> None:
    response = requests.get(f"{sim_server.url}/v1/nothing_here", auth=(API_KEY, ""), timeout=5)

    assert response.status_code == 404
    assert "Unrecognized request URL" in response.json()["error"]["message"]


def test_webhook_endpoints_return_a_secret_on_create_only(client: stripe.StripeClient) -> None:
    created = client.v1.webhook_endpoints.create({"url": "http://127.0.0.1:9/hook",
                                                  "enabled_events": ["checkout.session.completed"]})
    chosen = client.v1.webhook_endpoints.create({"url": "http://127.0.0.1:9/hook2", "enabled_events": ["*"],
                                                 "secret": "whsec_mine"})  # type: ignore[typeddict-unknown-key]
    listed = client.v1.webhook_endpoints.list()

    assert created.id.startswith("we_") and created.secret.startswith("whsec_")
    assert chosen.secret == "whsec_mine"
    assert [e.id for e in listed.data] == [chosen.id, created.id]
    assert "secret" not in listed.data[0]
    assert created.enabled_events == ["checkout.session.completed"] and created.status == "enabled"


def test_sixty_four_concurrent_requests_are_served(sim_server: SimServer, catalog: Catalog) -> None:
    from concurrent.futures import ThreadPoolExecutor

    catalog.product("prod_busy")

    def fetch(_: int) -> int:
        with requests.Session() as http:
            return http.get(f"{sim_server.url}/v1/prices?product=prod_busy", auth=(API_KEY, ""), timeout=10).status_code

    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(fetch, range(256)))

    assert statuses == [200] * 256


