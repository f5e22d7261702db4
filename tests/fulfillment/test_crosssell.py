"""The seed's cross-sell rules, one at a time, then together in decide_offer; pure functions only."""
from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulfillment.crosssell import (
    CURRENCY,
    QUANTITY,
    RECURRING_INTERVAL,
    SINGLE_PRICE,
    TAX_BEHAVIOR,
    UPSELLS_NON_RECURRING,
    Offer,
    Price,
    Refusal,
    SessionContext,
    decide_offer,
    failed_rules,
    has_specified_tax_behavior,
    item_anomalies,
    price_failures,
)

USD = Price(id="price_pro", product="prod_pro", currency="usd", tax_behavior="exclusive")
PAYMENT = SessionContext(mode="payment", prices=(USD,))
MONTHLY = Price(id="price_pro_m", product="prod_pro", currency="usd", type="recurring", interval="month",
                interval_count=1, tax_behavior="exclusive")
SUBSCRIPTION = SessionContext(mode="subscription", prices=(MONTHLY,))


def price(product: str = "prod_deploy", **facts: object) -> Price:
    """A cross-sell price that passes every rule in PAYMENT, changed by *facts*."""
    defaults: dict[str, object] = {"id": f"price_{product}", "product": product, "currency": "usd",
                                   "tax_behavior": "exclusive"}
    return Price(**{**defaults, **facts})  # type: ignore[arg-type]


def recurring(interval: str = "month", interval_count: int | None = 1, **facts: object) -> Price:
    return price(type="recurring", interval=interval, interval_count=interval_count, **facts)


# --- rule 1: exactly one active price ------------------------------------------------------------------

def test_a_product_with_one_price_that_passes_every_rule_fails_none() -> None:
    assert failed_rules([price()], PAYMENT) == ()


@pytest.mark.parametrize("prices", [
    [],
    [price(id="price_a"), price(id="price_b")],
    [price(active=False)],
], ids=["no-price", "two-active-prices", "only-an-inactive-price"])
def test_single_price_fails_without_exactly_one_active_price(prices: list[Price]) -> None:
    assert failed_rules(prices, PAYMENT) == (SINGLE_PRICE,)


def test_an_inactive_second_price_is_ignored() -> None:
    assert failed_rules([price(id="price_old", active=False), price(id="price_new")], PAYMENT) == ()


def test_single_price_is_checked_before_the_price_itself() -> None:
    # Two prices that each break the currency rule: the product fails on the count alone.
    assert failed_rules([price(currency="eur"), price(id="price_2", currency="eur")], PAYMENT) == (SINGLE_PRICE,)


# --- rule 2: currency ----------------------------------------------------------------------------------

def test_currency_fails_when_it_differs_from_the_sessions_prices() -> None:
    assert price_failures(price(currency="eur"), PAYMENT) == (CURRENCY,)


def test_currency_is_compared_without_case() -> None:
    assert price_failures(price(currency="USD"), PAYMENT) == ()


def test_currency_fails_when_the_session_already_mixes_currencies() -> None:
    mixed = SessionContext(mode="payment", prices=(USD, price("prod_other", currency="eur")))

    assert price_failures(price(currency="usd"), mixed) == (CURRENCY,)


def test_currency_holds_when_the_session_has_no_other_price() -> None:
    assert price_failures(price(currency="jpy"), SessionContext(mode="payment", prices=())) == ()


# --- rule 3: recurring needs subscription mode and the same billing interval ---------------------------

def test_a_recurring_price_fails_in_payment_mode() -> None:
    assert price_failures(recurring(), PAYMENT) == (RECURRING_INTERVAL,)


def test_a_recurring_price_fails_in_setup_mode() -> None:
    assert price_failures(recurring(), SessionContext(mode="setup", prices=())) == (RECURRING_INTERVAL,)


def test_a_recurring_price_on_the_same_interval_passes_in_subscription_mode() -> None:
    assert price_failures(recurring("month", 1), SUBSCRIPTION) == ()


def test_a_recurring_interval_mismatch_fails() -> None:
    assert price_failures(recurring("year", 1), SUBSCRIPTION) == (RECURRING_INTERVAL,)


def test_a_recurring_interval_count_mismatch_fails() -> None:
    assert price_failures(recurring("month", 3), SUBSCRIPTION) == (RECURRING_INTERVAL,)


def test_a_missing_interval_count_means_one() -> None:
    assert price_failures(recurring("month", None), SUBSCRIPTION) == ()


def test_one_time_prices_of_the_session_do_not_constrain_the_interval() -> None:
    session = SessionContext(mode="subscription", prices=(MONTHLY, USD))

    assert price_failures(recurring("month", 1), session) == ()
    assert price_failures(price(), session) == ()


# --- rule 4: subscription upsells allow only one-time cross-sells --------------------------------------

def test_upsells_refuse_a_recurring_cross_sell() -> None:
    session = SessionContext(mode="subscription", prices=(MONTHLY,), subscription_upsells=True)

    assert price_failures(recurring("month", 1), session) == (UPSELLS_NON_RECURRING,)


def test_upsells_accept_a_one_time_cross_sell() -> None:
    session = SessionContext(mode="subscription", prices=(MONTHLY,), subscription_upsells=True)

    assert price_failures(price(), session) == ()


# --- rule 5: automatic tax needs a specified tax behavior ----------------------------------------------

def test_automatic_tax_refuses_an_unspecified_behavior_without_an_account_default() -> None:
    session = SessionContext(mode="payment", prices=(USD,), automatic_tax=True)

    assert price_failures(price(tax_behavior="unspecified"), session) == (TAX_BEHAVIOR,)


@pytest.mark.parametrize("account_default", ["inclusive", "exclusive"])
def test_automatic_tax_accepts_an_unspecified_behavior_under_an_account_default(account_default: str) -> None:
    session = SessionContext(mode="payment", prices=(USD,), automatic_tax=True, default_tax_behavior=account_default)

    assert price_failures(price(tax_behavior="unspecified"), session) == ()


@pytest.mark.parametrize("behavior", ["inclusive", "exclusive"])
def test_automatic_tax_accepts_a_price_with_its_own_behavior(behavior: str) -> None:
    session = SessionContext(mode="payment", prices=(USD,), automatic_tax=True)

    assert price_failures(price(tax_behavior=behavior), session) == ()


def test_without_automatic_tax_an_unspecified_behavior_is_fine() -> None:
    assert price_failures(price(tax_behavior="unspecified"), PAYMENT) == ()


def test_an_unknown_tax_behavior_is_not_specified_even_with_an_account_default() -> None:
    assert not has_specified_tax_behavior(price(tax_behavior="bogus"), "inclusive")


def test_every_rule_a_price_breaks_is_listed_in_rule_order() -> None:
    session = SessionContext(mode="payment", prices=(USD,), automatic_tax=True, subscription_upsells=True)

    failures = price_failures(recurring(currency="eur", tax_behavior="unspecified"), session)

    assert failures == (CURRENCY, RECURRING_INTERVAL, UPSELLS_NON_RECURRING, TAX_BEHAVIOR)


# --- decide_offer ----------------------------------------------------------------------------------------

PRICES = {
    "prod_deploy": [price("prod_deploy")],
    "prod_eur_addon": [price("prod_eur_addon", currency="eur")],
    "prod_two_prices": [price("prod_two_prices", id="p1"), price("prod_two_prices", id="p2")],
}


def prices_of(product: str) -> Sequence[Price]:
    return PRICES.get(product, [])


def test_decide_offer_picks_the_first_eligible_source_and_lists_the_refusals_before_it() -> None:
    cross_sells = {"prod_a": "prod_eur_addon", "prod_b": "prod_two_prices", "prod_c": "prod_deploy",
                   "prod_d": "prod_deploy"}

    offer, refusals = decide_offer(["prod_a", "prod_b", "prod_c", "prod_d"], cross_sells, prices_of, PAYMENT)

    assert offer == Offer(source="prod_c", product="prod_deploy", price=PRICES["prod_deploy"][0])
    assert refusals == (Refusal("prod_a", "prod_eur_addon", (CURRENCY,)),
                        Refusal("prod_b", "prod_two_prices", (SINGLE_PRICE,)))


def test_decide_offer_skips_products_without_a_cross_sell() -> None:
    offer, refusals = decide_offer(["prod_x", "prod_c"], {"prod_c": "prod_deploy"}, prices_of, PAYMENT)

    assert offer is not None and offer.source == "prod_c"
    assert refusals == ()


def test_a_product_already_in_the_session_is_not_offered() -> None:
    # Given the buyer already has prod_deploy in the session (added, or bought directly)
    products = ["prod_c", "prod_deploy"]

    # When the session's offer is decided
    offer, refusals = decide_offer(products, {"prod_c": "prod_deploy"}, prices_of, PAYMENT)

    # Then it is neither offered again nor reported as refused
    assert offer is None
    assert refusals == ()


def test_no_offer_when_every_configured_cross_sell_fails() -> None:
    offer, refusals = decide_offer(["prod_a"], {"prod_a": "prod_eur_addon"}, prices_of, PAYMENT)

    assert offer is None
    assert refusals == (Refusal("prod_a", "prod_eur_addon", (CURRENCY,)),)


def test_the_offered_price_is_the_active_one() -> None:
    prices = {"prod_deploy": [price(id="price_retired", active=False), price(id="price_current")]}

    offer, _ = decide_offer(["prod_c"], {"prod_c": "prod_deploy"}, lambda pid: prices[pid], PAYMENT)

    assert offer is not None and offer.price.id == "price_current"


# --- item_anomalies ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("quantity", [0, 2, 10])
def test_a_cross_sell_item_with_a_quantity_other_than_one_is_an_anomaly(quantity: int) -> None:
    assert item_anomalies(price(), quantity, PAYMENT) == (QUANTITY,)


def test_a_cross_sell_item_of_quantity_one_that_passes_every_rule_has_no_anomaly() -> None:
    assert item_anomalies(price(), 1, PAYMENT) == ()


def test_item_anomalies_list_the_quantity_first_then_the_broken_rules() -> None:
    assert item_anomalies(price(currency="eur"), 2, PAYMENT) == (QUANTITY, CURRENCY)


# --- properties ----------------------------------------------------------------------------------------------

currencies = st.sampled_from(["usd", "eur", "USD"])
prices = st.builds(
    Price,
    id=st.sampled_from(["price_1", "price_2", "price_3"]),
    product=st.sampled_from(["prod_1", "prod_2"]),
    currency=currencies,
    type=st.sampled_from(["one_time", "recurring"]),
    interval=st.sampled_from([None, "month", "year"]),
    interval_count=st.sampled_from([None, 1, 3]),
    tax_behavior=st.sampled_from(["inclusive", "exclusive", "unspecified"]),
    active=st.booleans(),
)
contexts = st.builds(
    SessionContext,
    mode=st.sampled_from(["payment", "subscription", "setup"]),
    prices=st.lists(prices, max_size=3).map(tuple),
    automatic_tax=st.booleans(),
    subscription_upsells=st.booleans(),
    default_tax_behavior=st.sampled_from(["inclusive", "exclusive", "unspecified"]),
)
product_ids = st.sampled_from([f"prod_{letter}" for letter in "abcdef"])


@given(
    session_products=st.lists(product_ids, max_size=6),
    cross_sells=st.dictionaries(product_ids, product_ids, max_size=6),
    catalog=st.dictionaries(product_ids, st.lists(prices, max_size=3), max_size=6),
    session=contexts,
)
def test_decide_offer_only_offers_what_passes_every_rule(session_products: list[str], cross_sells: dict[str, str],
                                                         catalog: dict[str, list[Price]],
                                                         session: SessionContext) -> None:
    def prices_for(product: str) -> list[Price]:
        return catalog.get(product, [])

    offer, refusals = decide_offer(session_products, cross_sells, prices_for, session)

    if offer is not None:
        assert failed_rules(prices_for(offer.product), session) == ()
        assert offer.product not in session_products
        assert cross_sells[offer.source] == offer.product
        assert offer.price.active
    for refusal in refusals:
        assert refusal.failed and refusal.failed == failed_rules(prices_for(refusal.product), session)
        assert set(refusal.failed) <= {SINGLE_PRICE, CURRENCY, RECURRING_INTERVAL, UPSELLS_NON_RECURRING,
                                       TAX_BEHAVIOR}
        assert refusal.product not in session_products


@given(candidate=prices, session=contexts, quantity=st.integers(min_value=0, max_value=5))
def test_item_anomalies_are_the_price_failures_plus_the_quantity(candidate: Price, session: SessionContext,
                                                                 quantity: int) -> None:
    anomalies = item_anomalies(candidate, quantity, session)

    assert (QUANTITY in anomalies) is (quantity != 1)
    assert tuple(name for name in anomalies if name != QUANTITY) == price_failures(candidate, session)
