"""The vendored field lists and their checker: Stripe's fixtures pass, each kind of wrong document is caught."""
from __future__ import annotations

import pytest

from tests.fixtures.stripe import always_present, api_version, fields, fixture, problems
from tests.fixtures.stripe.extract import parse_module, split_union

VENDORED = ("checkout.session", "item", "price", "product", "event", "webhook_endpoint")

#: always-present fields of the pinned version that Stripe's (older) published fixtures lack
NEWER_THAN_THE_FIXTURES = {
    "checkout.session": [
        "checkout.session.allowed_payment_method_types: missing (always present in 2026-10-28.endive)"],
    "product": ["product.tax_details: missing (always present in 2026-10-28.endive)"],
}


def test_the_lists_are_for_the_pinned_api_version() -> None:
    from fulfillment import defaults

    assert api_version() == defaults.STRIPE_API_VERSION == "2026-10-28.endive"


@pytest.mark.parametrize("name", VENDORED)
def test_stripes_own_fixture_agrees_with_the_lists(name: str) -> None:
    assert problems(fixture(name), name) == NEWER_THAN_THE_FIXTURES.get(name, [])


def test_the_facts_the_reader_relies_on() -> None:
    item, price, session = fields("item"), fields("price"), fields("checkout.session")
    assert all(item[name]["nullable"] and item[name]["always"] for name in ("metadata", "description", "price",
                                                                             "quantity"))
    assert price["product"]["kind"] == "expandable" and price["product"]["objects"] == ["product",
                                                                                        "product (deleted)"]
    for spec in (session["mode"], session["payment_status"], session["status"], price["type"],
                 price["recurring.interval"], price["tax_behavior"]):
        assert spec["kind"] == "enum" and spec["open"] is True
    assert "hosted" not in session["ui_mode"]["enum"]
    assert {"adaptive_pricing", "client_secret", "currency_conversion", "custom_fields", "discounts",
            "payment_method_options", "setup_intent", "shipping_cost"} <= set(always_present("checkout.session"))
    assert {"provider", "enabled"} <= set(always_present("checkout.session", "automatic_tax"))
    assert fixture("item")["metadata"] is None


def test_a_missing_always_present_field_is_reported_even_nested() -> None:
    session = fixture("checkout.session")
    del session["automatic_tax"]["provider"]
    del session["livemode"]
    assert sorted(problems(session, "checkout.session", strict=False))[-2:] == [
        "checkout.session.automatic_tax.provider: missing (always present in 2026-10-28.endive)",
        "checkout.session.livemode: missing (always present in 2026-10-28.endive)",
    ]


def test_null_where_none_is_allowed_and_a_wrong_kind_are_reported() -> None:
    item = fixture("item")
    item["amount_total"] = None
    item["price"]["unit_amount"] = "1000"
    assert problems(item, "item") == ["item.amount_total: null, but the field is not nullable",
                                      "item.price.unit_amount: '1000' is not number"]


def test_enum_values_closed_open_and_strict() -> None:
    session = fixture("checkout.session")
    session["ui_mode"] = "hosted"
    session["custom_fields"] = [{"key": "k", "label": {"custom": "K", "type": "magic"}, "optional": False,
                                 "type": "text", "text": {"default_value": None, "maximum_length": None,
                                                          "minimum_length": None, "value": None}}]
    found = problems(session, "checkout.session", strict=False)
    # an open enum accepts a new value from Stripe; a closed one never does
    assert found == NEWER_THAN_THE_FIXTURES["checkout.session"] + [
        "checkout.session.custom_fields[0].label.type: 'magic' is not enum ['custom']"]
    assert "checkout.session.ui_mode: 'hosted' is not enum ['elements', 'embedded_page', 'form', 'hosted_page']" \
        in problems(session, "checkout.session", strict=True)


def test_strict_reports_fields_the_version_does_not_have() -> None:
    price = fixture("price")
    price["shiny_new_field"] = 1
    assert problems(price, "price", strict=False) == []
    assert problems(price, "price") == ["price.shiny_new_field: not a field of price in 2026-10-28.endive"]


def test_an_event_is_checked_down_to_the_session_it_carries() -> None:
    event = fixture("event")
    event["type"] = "checkout.session.completed"
    session = fixture("checkout.session")
    session["mode"] = None
    event["data"] = {"object": session}
    assert "event.data.object.mode: null, but the field is not nullable" in problems(event, "event")


def test_the_extractor_reads_optional_nullable_enums_and_nested_names(tmp_path) -> None:
    declaration = tmp_path / "Things.d.ts"
    declaration.write_text(
        "import { Metadata, OtherString } from './shared.js';\n"
        "export interface Thing {\n    /**\n     * doc\n     */\n    id: string;\n    object: 'thing';\n"
        "    kind: Thing.Kind | null;\n    inner?: Thing.Inner;\n"
        "    map?: {\n        [key: string]: number;\n    };\n}\n"
        "export declare namespace Thing {\n    type Kind = 'a' | 'b' | OtherString;\n"
        "    interface Inner {\n        depth: Inner.Depth;\n    }\n"
        "    namespace Inner {\n        type Depth = 'deep';\n    }\n}\n", encoding="utf-8")
    module = parse_module(declaration)
    assert [(m.name, m.optional, m.type) for m in module.interfaces["Thing"].members] == [
        ("id", False, "string"), ("object", False, "'thing'"), ("kind", False, "Thing.Kind | null"),
        ("inner", True, "Thing.Inner"), ("map", True, "{...}")]
    assert module.aliases == {"Thing.Kind": "'a' | 'b' | OtherString", "Thing.Inner.Depth": "'deep'"}
    assert split_union("A | Array<B | C> | null") == ["A", "Array<B | C>", "null"]
