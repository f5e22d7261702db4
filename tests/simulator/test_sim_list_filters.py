"""List filters as Stripe documents them (stripe-node 23.1.0's ``*ListParams``), and Stripe's line item limits.

Each of these was a gap found by driving the simulator as a merchant would: refused filters Stripe
accepts, and a payment-mode session of more than 100 line items that Stripe refuses.
"""
from __future__ import annotations

import pytest
import stripe

from tests.support.simulator import Catalog


def _prices(client: stripe.StripeClient) -> dict[str, str]:
    client.v1.products.create({"id": "prod_a", "name": "A"})
    client.v1.products.create({"id": "prod_b", "name": "B"})
    made = {
        "a_usd": client.v1.prices.create({"product": "prod_a", "currency": "usd", "unit_amount": 100,
                                          "lookup_key": "a_usd"}).id,
        "a_eur": client.v1.prices.create({"product": "prod_a", "currency": "eur", "unit_amount": 90,
                                          "lookup_key": "a_eur"}).id,
        "b_month": client.v1.prices.create({"product": "prod_b", "currency": "usd", "unit_amount": 500,
                                            "recurring": {"interval": "month"}, "lookup_key": "b_month"}).id,
        "b_year": client.v1.prices.create({"product": "prod_b", "currency": "usd", "unit_amount": 5000,
                                           "recurring": {"interval": "year"}}).id,
    }
    return made


def test_prices_list_by_lookup_keys(client: stripe.StripeClient) -> None:
    made = _prices(client)

    found = client.v1.prices.list({"lookup_keys": ["a_usd", "b_month", "nope"]})

    assert sorted(price.id for price in found.data) == sorted([made["a_usd"], made["b_month"]])


def test_prices_list_refuses_more_than_ten_lookup_keys(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.prices.list({"lookup_keys": [f"key_{n}" for n in range(11)]})
    assert refused.value.param == "lookup_keys"


def test_prices_list_by_currency_type_and_recurring_interval(client: stripe.StripeClient) -> None:
    made = _prices(client)

    assert [p.id for p in client.v1.prices.list({"currency": "eur"}).data] == [made["a_eur"]]
    assert {p.id for p in client.v1.prices.list({"type": "one_time"}).data} == {made["a_usd"], made["a_eur"]}
    assert [p.id for p in client.v1.prices.list({"recurring": {"interval": "year"}}).data] == [made["b_year"]]
    assert {p.id for p in client.v1.prices.list({"product": "prod_b", "created": {"gte": 0}}).data} == {
        made["b_month"], made["b_year"]}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.list({"type": "weekly"})


def test_products_list_by_ids_type_shippable_and_created(client: stripe.StripeClient) -> None:
    _prices(client)

    assert [p.id for p in client.v1.products.list({"ids": ["prod_b", "prod_x"]}).data] == ["prod_b"]
    assert {p.id for p in client.v1.products.list({"type": "service"}).data} == {"prod_a", "prod_b"}
    assert client.v1.products.list({"shippable": True}).data == []
    assert client.v1.products.list({"created": {"lt": 1}}).data == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.list({"ids": [f"prod_{n}" for n in range(11)]})


def test_accounts_list_by_created(client: stripe.StripeClient) -> None:
    client.v1.accounts.create({"type": "standard"})

    assert len(client.v1.accounts.list({"created": {"gte": 1}}).data) == 1
    assert client.v1.accounts.list({"created": {"lt": 1}}).data == []


def test_a_payment_mode_session_takes_at_most_100_line_items(client: stripe.StripeClient,
                                                             catalog: Catalog) -> None:
    price = catalog.product("prod_many")
    params = {"mode": "payment", "success_url": "https://shop.example/ok"}

    hundred = client.v1.checkout.sessions.create(
        {**params, "line_items": [{"price": price, "quantity": 1}] * 100})  # type: ignore[arg-type]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.checkout.sessions.create(
            {**params, "line_items": [{"price": price, "quantity": 1}] * 101})  # type: ignore[arg-type]

    assert hundred.id.startswith("cs_test_")
    assert refused.value.param == "line_items"


def test_a_subscription_session_takes_at_most_20_recurring_line_items(client: stripe.StripeClient,
                                                                     catalog: Catalog) -> None:
    price = catalog.product("prod_seat", interval="month")
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.checkout.sessions.create(
            {"mode": "subscription", "success_url": "https://shop.example/ok",
             "line_items": [{"price": price, "quantity": 1}] * 21})  # type: ignore[arg-type]
    assert "20 recurring" in str(refused.value)
