"""Classifying a paid session's items (primary or cross-sell, anomalies) and the order summary."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulfillment.catalog import Catalog, parse_catalog
from fulfillment.orders import UNFULFILLABLE, classify_items, mask_email, order_summary
from fulfillment.schemas import CheckoutSession, LineItem
from tests.support.fulfillment_fixtures import make_item, make_session

CATALOG = parse_catalog({
    "account": {"default_tax_behavior": "unspecified"},
    "defaults": {"handler": "log"},
    "products": {
        "prod_pro": {"name": "Professional", "cross_sell": "prod_deploy", "handler": "http",
                     "options": {"url": "https://fulfil.example/hook"}},
        "prod_team": {"cross_sell": "prod_deploy"},
        "prod_deploy": {"name": "Deploy add-on", "handler": "log"},
    },
})


def described(session: CheckoutSession, items: list[LineItem], catalog: Catalog) -> list[dict[str, Any]]:
    """The items as classify_items describes them, in the shape the ledger stores."""
    return [row.stored() for row in classify_items(session, items, catalog)]


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def test_the_item_another_product_cross_sells_is_marked() -> None:
    rows = described(make_session(), [make_item("li_1", "prod_pro"), make_item("li_2", "prod_deploy")], CATALOG)

    assert rows == [
        {"id": "li_1", "position": 0, "product": "prod_pro", "product_name": "Professional", "price": "price_prod_pro",
         "description": "prod_pro", "quantity": 1, "currency": "usd", "amount_total": 1500, "cross_sell": False,
         "cross_sold_by": None, "anomalies": [], "handler": "http"},
        {"id": "li_2", "position": 1, "product": "prod_deploy", "product_name": "Deploy add-on",
         "price": "price_prod_deploy", "description": "prod_deploy", "quantity": 1, "currency": "usd",
         "amount_total": 1500, "cross_sell": True, "cross_sold_by": "prod_pro", "anomalies": [], "handler": "log"},
    ]


def test_a_cross_sell_product_bought_alone_is_not_a_cross_sell() -> None:
    # quantity 2 would be an anomaly for a cross-sell; bought on its own, it is just an order.
    [row] = described(make_session(), [make_item("li_1", "prod_deploy", quantity=2)], CATALOG)

    assert (row["cross_sell"], row["cross_sold_by"], row["anomalies"]) == (False, None, [])


def test_a_product_that_is_not_this_sessions_cross_sell_is_not_marked() -> None:
    rows = described(make_session(), [make_item("li_1", "prod_pro"), make_item("li_2", "prod_other")], CATALOG)

    assert [row["cross_sell"] for row in rows] == [False, False]


def test_the_first_source_in_line_item_order_is_recorded() -> None:
    items = [make_item("li_1", "prod_team"), make_item("li_2", "prod_pro"), make_item("li_3", "prod_deploy")]

    rows = by_id(described(make_session(), items, CATALOG))

    assert rows["li_3"]["cross_sold_by"] == "prod_team"


def test_a_cross_sell_with_quantity_two_is_flagged() -> None:
    items = [make_item("li_1", "prod_pro"), make_item("li_2", "prod_deploy", quantity=2)]

    rows = by_id(described(make_session(), items, CATALOG))

    assert rows["li_2"]["cross_sell"] is True
    assert rows["li_2"]["anomalies"] == ["quantity"]
    assert rows["li_1"]["anomalies"] == []


def test_a_cross_sell_in_another_currency_is_flagged() -> None:
    items = [make_item("li_1", "prod_pro", currency="usd"), make_item("li_2", "prod_deploy", currency="eur")]

    assert by_id(described(make_session(), items, CATALOG))["li_2"]["anomalies"] == ["currency"]


def test_a_recurring_cross_sell_on_another_interval_is_flagged() -> None:
    items = [make_item("li_1", "prod_pro", interval="month"), make_item("li_2", "prod_deploy", interval="year")]

    rows = by_id(described(make_session(mode="subscription"), items, CATALOG))

    assert rows["li_2"]["anomalies"] == ["recurring_interval"]


def test_an_untaxable_cross_sell_under_automatic_tax_is_flagged_unless_the_account_has_a_default() -> None:
    items = [make_item("li_1", "prod_pro"), make_item("li_2", "prod_deploy", tax_behavior="unspecified")]
    session = make_session(automatic_tax=True)
    with_default = parse_catalog({"account": {"default_tax_behavior": "inclusive"},
                                  "products": {"prod_pro": {"cross_sell": "prod_deploy"}}})

    assert by_id(described(session, items, CATALOG))["li_2"]["anomalies"] == ["tax_behavior"]
    assert by_id(described(session, items, with_default))["li_2"]["anomalies"] == []


def test_the_handler_comes_from_the_catalog_or_its_default() -> None:
    catalog = parse_catalog({"defaults": {"handler": "crm"}, "products": {"prod_pro": {"handler": "http"}}})

    rows = described(make_session(), [make_item("li_1", "prod_pro"), make_item("li_2", "prod_x")], catalog)

    assert [row["handler"] for row in rows] == ["http", "crm"]


def test_the_name_stripe_gives_wins_over_the_catalogs() -> None:
    item = make_item("li_1", "prod_pro")
    named = replace(item, price=replace(item.price, product_name="Pro (from Stripe)"))

    [row] = described(make_session(), [named], CATALOG)

    assert row["product_name"] == "Pro (from Stripe)"


# --- order summary ---------------------------------------------------------------------------------------------

def test_the_order_summary_counts_cross_sells_and_anomalies_and_masks_the_customer() -> None:
    session = make_session(email="jane.doe@example.com")
    rows = classify_items(session, [make_item("li_1", "prod_pro"), make_item("li_2", "prod_deploy", quantity=3)],
                          CATALOG)

    summary = order_summary(session, rows).stored()

    assert summary == {
        "mode": "payment", "payment_status": "paid", "currency": "usd", "amount_total": 4500,
        "customer": "j***@example.com", "client_reference_id": None, "livemode": False,
        "item_count": 2, "cross_sell_count": 1, "anomalies": [{"item": "li_2", "anomalies": ["quantity"]}],
    }
    assert "jane.doe" not in str(summary)


def test_an_order_summary_before_the_items_are_known() -> None:
    summary = order_summary(make_session(payment_status="unpaid", email=None)).stored()

    assert (summary["item_count"], summary["cross_sell_count"], summary["anomalies"]) == (0, 0, [])
    assert summary["customer"] is None


# --- mask_email ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("email", "masked"), [
    ("jane.doe@example.com", "j***@example.com"),
    ("j@example.com", "j***@example.com"),
    ("@example.com", "***@example.com"),
    ("odd@name@example.com", "o***@example.com"),
    ("no-at-sign", None),
    ("", None),
    (None, None),
])
def test_mask_email(email: str | None, masked: str | None) -> None:
    assert mask_email(email) == masked


@given(local=st.text(min_size=1, max_size=30), domain=st.text(min_size=1, max_size=30).filter(lambda d: "@" not in d))
def test_mask_email_keeps_only_the_first_character_of_the_local_part(local: str, domain: str) -> None:
    assert mask_email(f"{local}@{domain}") == f"{local[0]}***@{domain}"


def test_an_item_without_a_usable_price_gets_the_unfulfillable_handler_and_its_reason() -> None:
    # Given an order whose second item came without a price (Stripe's types allow null)
    broken = LineItem(id="li_2", price=None, quantity=None, currency="usd", amount_subtotal=0, amount_total=900,
                      description="Mystery", problem="the line item has no price")
    items = [make_item("li_1", "prod_pro"), broken, make_item("li_3", "prod_deploy")]

    rows = by_id(described(make_session(), items, CATALOG))

    # Then it alone is unfulfillable, with its reason, and the rest is classified as usual
    assert rows["li_2"] == {
        "id": "li_2", "position": 1, "product": None, "product_name": "", "price": None, "description": "Mystery",
        "quantity": None, "currency": "usd", "amount_total": 900, "cross_sell": False, "cross_sold_by": None,
        "anomalies": [], "handler": UNFULFILLABLE, "problem": "the line item has no price"}
    assert (rows["li_1"]["handler"], rows["li_3"]["cross_sell"], rows["li_3"]["cross_sold_by"]) == (
        "http", True, "prod_pro")


def test_a_cross_sell_with_a_null_quantity_is_flagged() -> None:
    items = [make_item("li_1", "prod_pro"), replace(make_item("li_2", "prod_deploy"), quantity=None)]

    assert by_id(described(make_session(), items, CATALOG))["li_2"]["anomalies"] == ["quantity"]
