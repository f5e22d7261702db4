"""The worker's reader on Stripe's own objects and on every variant the official types allow.

Stripe's published fixtures (tests/fixtures/stripe/fixtures3/) and documents built from the field
lists of the pinned API version (tests/contract/variants.py): nulls wherever allowed, new values of
open enums, unknown fields at every depth, only the always-present fields. None may fail an order;
a line item without a price fails that item alone.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from fulfillment.schemas import PAYMENT_STATUSES, parse_line_items, parse_session
from tests.contract.variants import (
    NEW_FIELD,
    NEW_VALUE,
    complete,
    get_path,
    nullable_paths,
    open_enum_paths,
    set_path,
    stripe_fixture,
    synthesized,
    with_all_nulls,
    with_null,
    with_unknown_fields,
)
from tests.fixtures.stripe import fixture, problems
from tests.support.fulfillment_fixtures import line_item_page, only_item
from webhooks.envelope import parse_event


def item_with_price(price: Any) -> dict[str, Any]:
    item = fixture("item")
    item["price"] = price
    return item


def price_with_product(product: Any) -> dict[str, Any]:
    price = fixture("price")
    price["product"] = product
    return price


# --- Stripe's own fixtures, as published -----------------------------------------------------------------

def test_stripes_session_fixture() -> None:
    session = parse_session(fixture("checkout.session"))

    assert (session.id, session.mode, session.status, session.payment_status) == (
        "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY", "payment", "open", "unpaid")
    assert (session.currency, session.amount_total, session.customer_email, session.livemode) == (
        None, None, "example@example.com", False)
    assert not session.is_fulfillable


def test_stripes_line_item_fixture_with_its_null_metadata() -> None:
    document = fixture("item")
    assert document["metadata"] is None  # the very field that used to dead-letter whole orders

    item = only_item(document)

    assert item.problem is None and item.price is not None
    assert (item.id, item.quantity, item.currency, item.amount_total, item.description) == (
        "li_1Pgc73B7WZ01zgkWx8kcmZPK", 1, "usd", 0, "T-shirt")
    assert (item.price.id, item.price.product, item.price.type, item.price.tax_behavior) == (
        "price_1PgafmB7WZ01zgkW02Hf9z6c", "prod_QXg1hqf4jFNsqG", "one_time", "unspecified")


def test_stripes_price_and_product_fixtures_expanded_in_a_line_item() -> None:
    item = only_item(item_with_price(price_with_product(fixture("product"))))

    assert item.price is not None
    assert (item.price.product, item.price.product_name, item.price.type, item.price.interval,
            item.price.interval_count, item.price.unit_amount) == (
        "prod_QXg1hqf4jFNsqG", "T-shirt", "recurring", "month", 1, 2000)


def test_stripes_event_fixture_and_a_checkout_event_built_from_it() -> None:
    assert parse_event(json.dumps(fixture("event")).encode())["type"] == "plan.created"

    event = stripe_fixture("event", type="checkout.session.completed",
                           data={"object": fixture("checkout.session")})
    assert problems(event, "event", strict=False) == [
        "event.data.object.allowed_payment_method_types: missing (always present in 2026-10-28.endive)"]

    parsed = parse_event(json.dumps(event).encode())

    assert parsed["data"]["object"]["id"].startswith("cs_test_")


# --- nulls wherever the types allow them -----------------------------------------------------------------

def test_the_complete_documents_are_valid_for_the_version() -> None:
    for name in ("checkout.session", "item", "price", "product", "event"):
        assert problems(complete(name), name) == [], name


@pytest.mark.parametrize("path", nullable_paths("checkout.session"))
def test_a_session_with_any_nullable_field_null(path: str) -> None:
    document = with_null(complete("checkout.session"), path)
    assert document is not None and problems(document, "checkout.session") == []

    session = parse_session(document)

    assert session.id == fixture("checkout.session")["id"]


def test_a_session_with_every_nullable_field_null() -> None:
    document = with_all_nulls(complete("checkout.session"), "checkout.session")
    assert problems(document, "checkout.session") == []

    session = parse_session(document)

    assert (session.status, session.currency, session.amount_total, session.automatic_tax, session.metadata,
            session.customer_email) == ("", None, None, False, {}, None)


@pytest.mark.parametrize("path", nullable_paths("item") + [f"price.{path}" for path in nullable_paths("price")])
def test_a_line_item_with_any_nullable_field_null(path: str) -> None:
    document = with_null(item_with_price(price_with_product(fixture("product"))), path)
    assert document is not None

    item = only_item(document)

    # only a null price leaves crossfill nothing to classify, and then that item alone has a problem
    assert (item.problem is not None) is (path == "price")
    assert item.id == "li_1Pgc73B7WZ01zgkWx8kcmZPK"


@pytest.mark.parametrize("path", nullable_paths("product"))
def test_an_expanded_product_with_any_nullable_field_null(path: str) -> None:
    product = with_null(complete("product"), path)
    assert product is not None

    item = only_item(item_with_price(price_with_product(product)))

    assert item.price is not None and item.price.product == "prod_QXg1hqf4jFNsqG"


def test_a_line_item_with_every_nullable_field_null_fails_alone() -> None:
    document = with_all_nulls(fixture("item"), "item")
    assert problems(document, "item") == []

    items, _ = parse_line_items(line_item_page(fixture("item") | {"id": "li_good"}, document))

    assert [(item.id, item.problem) for item in items] == [
        ("li_good", None), ("li_1Pgc73B7WZ01zgkWx8kcmZPK", "the line item has no price")]


def test_a_deleted_product_in_the_price() -> None:
    item = only_item(item_with_price(price_with_product({"id": "prod_gone", "object": "product", "deleted": True})))

    assert item.price is not None and item.price.product == "prod_gone"


# --- new values of open enums ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", open_enum_paths("checkout.session"))
def test_a_session_with_a_new_value_of_any_open_enum(path: str) -> None:
    document = complete("checkout.session")
    assert set_path(document, path, NEW_VALUE)
    assert problems(document, "checkout.session", strict=False) == []

    session = parse_session(document)

    read = {"mode": session.mode, "status": session.status, "payment_status": session.payment_status}
    if path in read:
        assert read[path] == NEW_VALUE
    assert session.has_unknown_payment_status is (path == "payment_status")
    assert not session.is_fulfillable  # the fixture is unpaid; a new status is not paid either


@pytest.mark.parametrize("path", open_enum_paths("item") + [f"price.{path}" for path in open_enum_paths("price")])
def test_a_line_item_with_a_new_value_of_any_open_enum(path: str) -> None:
    document = fixture("item")
    assert set_path(document, path, NEW_VALUE)
    assert problems(document, "item", strict=False) == []

    item = only_item(document)

    assert item.problem is None and item.price is not None
    read = {"price.type": item.price.type, "price.tax_behavior": item.price.tax_behavior,
            "price.recurring.interval": item.price.interval}
    if path in read:
        assert read[path] == NEW_VALUE


def test_every_payment_status_of_the_version_is_known() -> None:
    from tests.fixtures.stripe import fields

    assert set(fields("checkout.session")["payment_status"]["enum"]) == PAYMENT_STATUSES


# --- fields crossfill has never heard of -----------------------------------------------------------------

def test_unknown_fields_at_every_depth_change_nothing() -> None:
    session, item = fixture("checkout.session"), item_with_price(price_with_product(fixture("product")))

    assert parse_session(with_unknown_fields(session)) == parse_session(session)
    assert only_item(with_unknown_fields(item)) == only_item(item)
    assert get_path(with_unknown_fields(item), f"price.product.{NEW_FIELD}.flag") is True


# --- only the always-present fields, from the field lists alone --------------------------------------------

@pytest.mark.parametrize("nulls", [False, True], ids=["values", "nulls"])
def test_the_synthesized_documents_are_valid_for_the_version(nulls: bool) -> None:
    for name in ("checkout.session", "item", "price", "product", "event"):
        assert problems(synthesized(name, nulls=nulls), name) == [], name


@pytest.mark.parametrize("nulls", [False, True], ids=["values", "nulls"])
def test_documents_with_only_the_always_present_fields(nulls: bool) -> None:
    session = parse_session(synthesized("checkout.session", nulls=nulls))
    item = only_item(synthesized("item", nulls=nulls))

    assert session.payment_status in PAYMENT_STATUSES
    assert (item.price is None) is nulls
    assert (item.problem == "the line item has no price") is nulls


def test_an_event_with_only_the_always_present_fields() -> None:
    event = synthesized("event", nulls=True)
    event.update(id="evt_synthesized", type="checkout.session.completed",
                 data={"object": synthesized("checkout.session", nulls=True) | {"id": "cs_test_synthesized"}})

    assert parse_event(json.dumps(event).encode())["data"]["object"]["id"] == "cs_test_synthesized"
