"""Stripe Checkout's cross-sell rules, as pure functions over plain data.

Stripe offers a product as a cross-sell only when all of these hold (the seed, "Cross-sells"):

1. ``single_price``: the cross-sell product has exactly one active price;
2. ``currency``: that price's currency is the currency of the session's other prices;
3. ``recurring_interval``: a recurring price needs a subscription-mode session whose other
   recurring prices bill on the same interval;
4. ``upsells_non_recurring``: with subscription upsells in use, only a non-recurring price;
5. ``tax_behavior``: with automatic tax, the price has a specified tax behavior (inclusive or
   exclusive), on the price or through the account's default.

The simulator decides offers with these; the worker re-checks what buyers actually paid for and
flags an anomaly when a cross-sell item breaks one (quantity other than 1 included).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

SINGLE_PRICE = "single_price"
CURRENCY = "currency"
RECURRING_INTERVAL = "recurring_interval"
UPSELLS_NON_RECURRING = "upsells_non_recurring"
TAX_BEHAVIOR = "tax_behavior"
QUANTITY = "quantity"  #: not an offer rule: a cross-sell line item's quantity is fixed at 1

SPECIFIED_TAX_BEHAVIORS = frozenset({"inclusive", "exclusive"})


@dataclass(frozen=True)
class Price:
    """The facts about a price that the rules read."""

    id: str
    product: str
    currency: str
    type: str = "one_time"  #: "one_time" or "recurring"
    interval: str | None = None  #: day, week, month or year, for a recurring price
    interval_count: int | None = None
    tax_behavior: str = "unspecified"  #: inclusive, exclusive or unspecified
    active: bool = True

    @property
    def is_recurring(self) -> bool:
        return self.type == "recurring"


@dataclass(frozen=True)
class SessionContext:
    """The facts about a Checkout Session that the rules read."""

    mode: str  #: payment, subscription or setup
    prices: tuple[Price, ...]  #: the session's prices other than the cross-sell's
    automatic_tax: bool = False
    subscription_upsells: bool = False
    default_tax_behavior: str = "unspecified"  #: the account's default (Tax Settings)


@dataclass(frozen=True)
class Offer:
    """The cross-sell a session offers: *product* with its one *price*, attached to *source* product."""

    source: str
    product: str
    price: Price


@dataclass(frozen=True)
class Refusal:
    """A configured cross-sell that a session does not offer, and the rules it fails."""

    source: str
    product: str
    failed: tuple[str, ...]


def failed_rules(candidate_prices: Sequence[Price], session: SessionContext) -> tuple[str, ...]:
    """Return the names of the rules a cross-sell product with *candidate_prices* fails; () if offered."""
    active = [price for price in candidate_prices if price.active]
    if len(active) != 1:
        return (SINGLE_PRICE,)
    return price_failures(active[0], session)


def price_failures(price: Price, session: SessionContext) -> tuple[str, ...]:
    """Return the rules (2-5) that one cross-sell *price* fails in *session*."""
    failures = []
    currencies = {other.currency.lower() for other in session.prices}
    if currencies and currencies != {price.currency.lower()}:
        failures.append(CURRENCY)
    if price.is_recurring and not _recurring_fits(price, session):
        failures.append(RECURRING_INTERVAL)
    if session.subscription_upsells and price.is_recurring:
        failures.append(UPSELLS_NON_RECURRING)
    if session.automatic_tax and not has_specified_tax_behavior(price, session.default_tax_behavior):
        failures.append(TAX_BEHAVIOR)
    return tuple(failures)


def _recurring_fits(price: Price, session: SessionContext) -> bool:
    if session.mode != "subscription":
        return False
    billing = (price.interval, price.interval_count or 1)
    return all((other.interval, other.interval_count or 1) == billing
               for other in session.prices if other.is_recurring)


def has_specified_tax_behavior(price: Price, default_tax_behavior: str) -> bool:
    """Whether *price* has a tax behavior, its own or the account's default."""
    return price.tax_behavior in SPECIFIED_TAX_BEHAVIORS or (
        price.tax_behavior == "unspecified" and default_tax_behavior in SPECIFIED_TAX_BEHAVIORS
    )


def decide_offer(
    session_products: Sequence[str],
    cross_sells: Mapping[str, str],
    prices_of: Callable[[str], Sequence[Price]],
    session: SessionContext,
) -> tuple[Offer | None, tuple[Refusal, ...]]:
    """Pick the session's cross-sell: the first of its products whose configured one passes every rule.

    Args:
        session_products: the session's products, in line-item order.
        cross_sells: product id → the product id it cross-sells (the Dashboard relation).
        prices_of: the prices of a product (all of them; inactive ones are skipped).
        session: the session's facts.

    Returns:
        The offer (or None) and, for every configured cross-sell that was not offered, why.
    """
    refusals: list[Refusal] = []
    in_session = set(session_products)
    for source in session_products:
        target = cross_sells.get(source)
        if target is None or target in in_session:
            continue
        candidates = prices_of(target)
        failed = failed_rules(candidates, session)
        if not failed:
            price = next(price for price in candidates if price.active)
            return Offer(source=source, product=target, price=price), tuple(refusals)
        refusals.append(Refusal(source=source, product=target, failed=failed))
    return None, tuple(refusals)


def item_anomalies(price: Price, quantity: int | None, session: SessionContext) -> tuple[str, ...]:
    """Rules a paid cross-sell line item breaks: its quantity must be 1 (null is not) and rules 2-5 must hold."""
    anomalies = [] if quantity == 1 else [QUANTITY]
    return (*anomalies, *price_failures(price, session))
