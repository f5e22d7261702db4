"""Stripe documents into typed objects: realistic shapes, unknown fields dropped, malformed ones refused."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from fulfillment.crosssell import Price as RulePrice
from fulfillment.errors import InvalidResponse
from fulfillment.schemas import CheckoutSession, LineItem, Price, parse_line_items, parse_session
from tests.support.fulfillment_fixtures import (
    line_item_page,
    only_item,
    stripe_line_item,
    stripe_price,
    stripe_product,
    stripe_session,
)

# --- line items ---------------------------------------------------------------------------------------

def test_a_realistic_line_item_with_an_expanded_product() -> None:
    document = stripe_line_item("li_1", stripe_price("price_pro", stripe_product("prod_pro", "Pro plan"),
                                                     currency="EUR", unit_amount=4900), description="Pro plan")

    item = only_item(document)

    assert item == LineItem(
        id="li_1",
        price=Price(id="price_pro", product="prod_pro", product_name="Pro plan", currency="eur", type="one_time",
                    unit_amount=4900, tax_behavior="exclusive"),
        quantity=1, currency="eur", amount_subtotal=4900, amount_total=4900, description="Pro plan",
    )


def test_a_product_given_as_an_id_has_no_name() -> None:
    item = only_item(stripe_line_item("li_1", stripe_price("price_1", "prod_plain")))

    assert (item.price.product, item.price.product_name) == ("prod_plain", "")


def test_a_recurring_price_carries_its_interval() -> None:
    price = stripe_price("price_monthly", "prod_sub", interval="month", interval_count=3)

    item = only_item(stripe_line_item("li_1", price))

    assert (item.price.type, item.price.interval, item.price.interval_count) == ("recurring", "month", 3)
    assert isinstance(item.price, RulePrice)  # the rules read the parsed price directly
    facts = RulePrice(**{field.name: getattr(item.price, field.name) for field in dataclasses.fields(RulePrice)})
    assert facts == RulePrice(id="price_monthly", product="prod_sub", currency="usd",
                              type="recurring", interval="month", interval_count=3, tax_behavior="exclusive")


def test_a_recurring_price_without_interval_count_counts_one() -> None:
    price = stripe_price("price_y", "prod_sub", interval="year")
    del price["recurring"]["interval_count"]

    assert only_item(stripe_line_item("li_1", price)).price.interval_count == 1


def test_a_null_tax_behavior_is_unspecified() -> None:
    item = only_item(stripe_line_item("li_1", stripe_price("price_1", "prod_1", tax_behavior=None)))

    assert item.price.tax_behavior == "unspecified"


def test_unknown_fields_are_dropped_at_every_level() -> None:
    document = stripe_line_item("li_1", stripe_price("price_1", stripe_product("prod_1")))
    document["brand_new_field"] = {"nested": True}
    document["price"]["another_new_field"] = 1
    document["price"]["recurring"] = {"interval": "week", "interval_count": 1, "new_in_2027": "x"}
    document["price"]["type"] = "recurring"

    item = only_item(document)

    assert item.price.interval == "week"
    assert not hasattr(item, "brand_new_field")


def test_a_page_reports_has_more() -> None:
    items, has_more = parse_line_items(line_item_page(stripe_line_item("li_1", stripe_price("price_1", "prod_1")),
                                            stripe_line_item("li_2", stripe_price("price_2", "prod_2")),
                                            has_more=True))

    assert [item.id for item in items] == ["li_1", "li_2"]
    assert has_more is True


def test_a_line_item_without_an_id_is_an_invalid_response() -> None:
    document = stripe_line_item("li_1", stripe_price("price_1", stripe_product("prod_1")))
    del document["id"]

    with pytest.raises(InvalidResponse, match="element 1 has no id"):
        parse_line_items(line_item_page(stripe_line_item("li_0", stripe_price("price_0", "prod_0")), document))


@pytest.mark.parametrize("path", [
    ("price",), ("currency",), ("amount_total",),
    ("price", "id"), ("price", "product"), ("price", "currency"), ("price", "type"),
])
def test_a_line_item_missing_a_field_crossfill_needs_fails_alone(path: tuple[str, ...]) -> None:
    good = stripe_line_item("li_0", stripe_price("price_0", "prod_0"))
    document = stripe_line_item("li_1", stripe_price("price_1", stripe_product("prod_1")))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]

    items, _ = parse_line_items(line_item_page(good, document))

    assert items[0].problem is None and items[0].price is not None
    assert (items[1].id, items[1].price) == ("li_1", None)
    assert items[1].problem and path[-1] in items[1].problem


@pytest.mark.parametrize(("where", "value"), [
    (("object",), "line_item"),
    (("quantity",), -1),
    (("quantity",), "many"),
    (("price",), None),
    (("price",), "price_1"),  # not expanded: crossfill always expands the price
    (("price", "product"), {"object": "product", "name": "no id"}),
    (("price", "product"), None),
    (("price", "recurring"), {"interval_count": 1}),
])
def test_a_line_item_with_an_unusable_value_fails_alone(where: tuple[str, ...], value: Any) -> None:
    document = stripe_line_item("li_1", stripe_price("price_1", stripe_product("prod_1")))
    parent = document
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = value

    item = only_item(document)

    assert item.price is None and item.problem
    assert (item.id, item.currency, item.amount_total) == ("li_1", "usd", 2000)


@pytest.mark.parametrize(("field", "value"), [("metadata", None), ("description", None), ("quantity", None),
                                              ("amount_subtotal", None), ("adjustable_quantity", None)])
def test_a_line_item_with_null_where_stripes_types_allow_it(field: str, value: Any) -> None:
    document = stripe_line_item("li_1", stripe_price("price_1", stripe_product("prod_1", "One")))
    document[field] = value

    item = only_item(document)

    assert item.problem is None and item.price is not None and item.price.product == "prod_1"
    assert (item.description, item.quantity)[("description", "quantity").index(field)] in ("", None) \
        if field in ("description", "quantity") else True


@pytest.mark.parametrize(("where", "value", "read"), [
    (("type",), "metered_v2", ("type", "metered_v2")),
    (("tax_behavior",), "automatic", ("tax_behavior", "automatic")),
    (("recurring",), {"interval": "fortnight", "interval_count": 1, "usage_type": "licensed"},
     ("interval", "fortnight")),
])
def test_a_new_value_of_an_open_enum_is_kept(where: tuple[str, ...], value: Any, read: tuple[str, str]) -> None:
    price = stripe_price("price_1", "prod_1")
    price[where[0]] = value

    item = only_item(stripe_line_item("li_1", price))

    assert item.price is not None and getattr(item.price, read[0]) == read[1]


def test_a_deleted_product_still_names_its_id() -> None:
    deleted = {"id": "prod_gone", "object": "product", "deleted": True}

    item = only_item(stripe_line_item("li_1", stripe_price("price_1", deleted)))

    assert item.price is not None and (item.price.product, item.price.product_name) == ("prod_gone", "")


@pytest.mark.parametrize("document", [None, [], "list", {"object": "list", "data": []},
                                      {"object": "item", "data": [], "has_more": False}])
def test_a_page_that_is_not_a_list_object_is_an_invalid_response(document: Any) -> None:
    with pytest.raises(InvalidResponse, match="line item list"):
        parse_line_items(document)


# --- sessions -----------------------------------------------------------------------------------------

def test_a_realistic_session() -> None:
    session = parse_session(stripe_session("cs_test_1", automatic_tax=True))

    assert session == CheckoutSession(id="cs_test_1", mode="payment", status="complete", payment_status="paid",
                                      currency="usd", amount_total=4500, automatic_tax=True,
                                      customer_email="jane.doe@example.com", livemode=False,
                                      client_reference_id="order-42", metadata={"campaign": "spring"})
    assert session.is_fulfillable


@pytest.mark.parametrize(("payment_status", "fulfillable"),
                         [("paid", True), ("no_payment_required", True), ("unpaid", False)])
def test_is_fulfillable_follows_stripes_guidance(payment_status: str, fulfillable: bool) -> None:
    assert parse_session(stripe_session("cs_1", payment_status=payment_status)).is_fulfillable is fulfillable


def test_a_session_with_nulls_where_stripe_sends_them() -> None:
    document = stripe_session("cs_1", email=None)
    document.update(automatic_tax=None, metadata=None, currency=None, amount_total=None, status=None,
                    customer_email="top.level@example.com")

    session = parse_session(document)

    assert (session.automatic_tax, session.metadata, session.currency, session.status) == (False, {}, None, "")
    assert session.customer_email == "top.level@example.com"


def test_customer_details_email_wins_over_customer_email() -> None:
    document = stripe_session("cs_1", email="details@example.com")
    document["customer_email"] = "prefilled@example.com"

    assert parse_session(document).customer_email == "details@example.com"


@pytest.mark.parametrize("field", ["id", "mode", "payment_status"])
def test_a_session_missing_a_required_field_is_an_invalid_response(field: str) -> None:
    document = stripe_session("cs_1")
    del document[field]

    with pytest.raises(InvalidResponse, match=field):
        parse_session(document)


@pytest.mark.parametrize(("field", "value"), [("object", "payment_intent"), ("mode", None), ("id", 42)])
def test_a_session_with_a_bad_value_is_an_invalid_response(field: str, value: Any) -> None:
    document = stripe_session("cs_1")
    document[field] = value

    with pytest.raises(InvalidResponse, match="checkout.session"):
        parse_session(document)


@pytest.mark.parametrize(("field", "value"), [("mode", "donation"), ("status", "archived"), ("ui_mode", "hosted")])
def test_a_session_with_a_new_enum_value_is_read(field: str, value: str) -> None:
    document = stripe_session("cs_1")
    document[field] = value

    session = parse_session(document)

    assert session.is_fulfillable and not session.has_unknown_payment_status


def test_an_unknown_payment_status_is_read_and_not_fulfillable() -> None:
    session = parse_session(stripe_session("cs_1", payment_status="partially_paid"))

    assert session.payment_status == "partially_paid"
    assert session.has_unknown_payment_status and not session.is_fulfillable


def test_parsing_does_not_change_the_document() -> None:
    document = stripe_line_item("li_1", stripe_price("price_1", stripe_product("prod_1")))
    before = copy.deepcopy(document)

    only_item(document)

    assert document == before
