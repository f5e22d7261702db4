"""An account's Checkout Sessions and their line items, from creation to completion or expiry.

A session's cross-sell offer is decided once, when it is created, by the shared rules
(``fulfillment.crosssell.decide_offer``) over the catalog and the account's Dashboard settings of
that moment. Completing or expiring a session creates its events, as Stripe does. Like every
resource store, it assumes its store's lock is held.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fulfillment.crosssell import SessionContext, decide_offer
from fulfillment.events import ASYNC_FAILED, ASYNC_SUCCEEDED, COMPLETED, EXPIRED
from simulator import defaults
from simulator.errors import InvalidRequest, found
from simulator.expansion import NOTHING, Expansion
from simulator.paging import ANY_TIME, Page, Range, list_object, page
from simulator.resources import (
    LineItemRecord,
    PriceRecord,
    SessionRecord,
    line_item_json,
    new_id,
    offer_json,
    refusal_json,
    session_json,
)
from simulator.store.account import Account
from simulator.store.catalog import Catalog
from simulator.store.events import AUTOMATIC, Events


@dataclass(frozen=True)
class LineItemSpec:
    """One ``line_items[i]`` of a session creation request."""

    price: str
    quantity: int


class Sessions:
    """The Checkout Sessions of one account, and what the buyer does to them."""

    def __init__(self, account: Account, catalog: Catalog, events: Events) -> None:
        self._account = account
        self._catalog = catalog
        self._events = events
        self.sessions: dict[str, SessionRecord] = {}

    def create_session(self, *, mode: str, line_items: Sequence[LineItemSpec], base_url: str,
                       automatic_tax: bool = False, subscription_upsells: bool = False,
                       metadata: dict[str, str] | None = None, client_reference_id: str | None = None,
                       customer_email: str | None = None, success_url: str | None = None,
                       cancel_url: str | None = None) -> dict[str, Any]:
        """Create a Checkout Session and decide its cross-sell offer with the rules of the seed.

        Raises:
            InvalidRequest: when the line items do not fit the mode, or their currencies differ.
        """
        prices = self._session_prices(mode, line_items)
        currency = prices[0].currency if prices else None
        sid = new_id("cs_live_" if self._account.livemode else "cs_test_", 58)
        now = self._account.now()
        session = SessionRecord(
            id=sid, livemode=self._account.livemode, created=now, expires_at=now + defaults.SESSION_TTL_S,
            mode=mode, currency=currency,
            line_items=[LineItemRecord(id=new_id("li_"), price=spec.price, quantity=spec.quantity)
                        for spec in line_items],
            url=f"{base_url.rstrip('/')}/sim/checkout/sessions/{sid}", automatic_tax=automatic_tax,
            subscription_upsells=subscription_upsells, default_tax_behavior=self._account.default_tax_behavior,
            metadata=dict(metadata or {}), client_reference_id=client_reference_id,
            customer_email=customer_email, success_url=success_url, cancel_url=cancel_url,
        )
        context = SessionContext(mode=mode, prices=tuple(p.facts() for p in prices),
                                 automatic_tax=automatic_tax, subscription_upsells=subscription_upsells,
                                 default_tax_behavior=self._account.default_tax_behavior)
        products = list(dict.fromkeys(p.product for p in prices))
        session.offer, session.refusals = decide_offer(products, self._account.cross_sells, self._catalog.prices_of,
                                                       context)
        self.sessions[sid] = session
        return self._session_json(session)

    def _session_prices(self, mode: str, line_items: Sequence[LineItemSpec]) -> list[PriceRecord]:
        if mode != "setup" and not line_items:
            raise InvalidRequest(f"line_items is required in {mode} mode", param="line_items",
                                 code="parameter_missing")
        if len(line_items) > self._account.config.max_line_items:
            raise InvalidRequest(f"at most {self._account.config.max_line_items} line_items are allowed "
                                 f"(got {len(line_items)})", param="line_items")
        prices = [self._catalog.price(spec.price, param=f"line_items[{i}][price]")
                  for i, spec in enumerate(line_items)]
        for i, price in enumerate(prices):
            if not price.active or not self._catalog.products[price.product].active:
                raise InvalidRequest(f"The price {price.id!r} is not active (or its product is archived)",
                                     param=f"line_items[{i}][price]")
            if price.currency != prices[0].currency:
                raise InvalidRequest(f"All line_items must share one currency: {price.currency} differs from "
                                     f"{prices[0].currency}", param=f"line_items[{i}][price]")
        recurring = [p for p in prices if p.type == "recurring"]
        # Stripe's limits per mode: 100 line items in payment mode; 20 recurring and 20 one-time in
        # subscription mode.
        if mode == "payment" and len(prices) > defaults.PAYMENT_MODE_LINE_ITEMS:
            raise InvalidRequest(f"A Checkout Session in payment mode can have at most "
                                 f"{defaults.PAYMENT_MODE_LINE_ITEMS} line items (got {len(prices)}); "
                                 "consolidate line items", param="line_items")
        for kind, count in (("recurring", len(recurring)), ("one-time", len(prices) - len(recurring))):
            if mode == "subscription" and count > defaults.SUBSCRIPTION_MODE_LINE_ITEMS:
                raise InvalidRequest(f"A Checkout Session in subscription mode can have at most "
                                     f"{defaults.SUBSCRIPTION_MODE_LINE_ITEMS} {kind} line items (got {count})",
                                     param="line_items")
        if mode == "payment" and recurring:
            raise InvalidRequest(f"The price {recurring[0].id!r} is recurring; use mode=subscription for "
                                 "recurring prices", param="line_items")
        if mode == "subscription" and not recurring:
            raise InvalidRequest("mode=subscription needs at least one recurring price", param="line_items")
        if len({(p.interval, p.interval_count) for p in recurring}) > 1:
            raise InvalidRequest("Checkout cannot combine recurring prices with different billing intervals",
                                 param="line_items")
        return prices

    def has_session(self, session_id: str) -> bool:
        """Whether this account has the Checkout Session *session_id*."""
        return session_id in self.sessions

    def _session(self, session_id: str) -> SessionRecord:
        return found(self.sessions, session_id, "checkout.session", param="session")

    def _amount(self, item: LineItemRecord) -> int:
        return self._catalog.prices[item.price].unit_amount * item.quantity

    def _session_json(self, session: SessionRecord, expand: Expansion = NOTHING) -> dict[str, Any]:
        body = session_json(session, self._amount)
        if "line_items" in expand:  # the first page only, as on Stripe; has_more tells
            first = session.line_items[:defaults.EXPANDED_LINE_ITEMS]
            body["line_items"] = list_object(
                [self._item_json(item, expand["line_items"]["data"]) for item in first],
                len(session.line_items) > len(first), f"/v1/checkout/sessions/{session.id}/line_items")
        return body

    def _item_json(self, item: LineItemRecord, expand: Expansion = NOTHING) -> dict[str, Any]:
        price = self._catalog.prices[item.price]
        return line_item_json(item, price, self._catalog.products[price.product],
                              self._catalog.price_json(price, expand["price"]))

    def get_session(self, session_id: str, *, expand: Expansion = NOTHING) -> dict[str, Any]:
        """A session; ``line_items`` expanded holds the first page only, as on Stripe."""
        return self._session_json(self._session(session_id), expand)

    def list_sessions(self, paging: Page, *, status: str | None = None, created: Range = ANY_TIME,
                      equal: dict[str, str] | None = None, expand: Expansion = NOTHING) -> dict[str, Any]:
        """Sessions, newest first (by ``created``, then the later created first), optionally of one
        *status*, *created* in range, and with each field of *equal* (``payment_intent``, ``customer``,
        ``payment_link``, ``subscription``, ``customer_details.email``) equal to its value."""
        wanted = dict(equal or {})
        sessions = [s for s in reversed(list(self.sessions.values()))
                    if (status is None or s.status == status) and created.holds(s.created)
                    and all(_field(s, name) == value for name, value in wanted.items())]
        sessions.sort(key=lambda s: s.created, reverse=True)  # stable: ties stay newest first
        data, more = page(sessions, lambda s: s.id, paging)
        return list_object([self._session_json(s, expand["data"]) for s in data], more, "/v1/checkout/sessions")

    def list_line_items(self, session_id: str, paging: Page, *, expand: Expansion = NOTHING) -> dict[str, Any]:
        """One page of a session's line items, in session order."""
        session = self._session(session_id)
        data, more = page(session.line_items, lambda item: item.id, paging)
        return list_object([self._item_json(item, expand["data"]) for item in data], more,
                           f"/v1/checkout/sessions/{session.id}/line_items")

    def sim_session_json(self, session_id: str) -> dict[str, Any]:
        """The session as the simulator sees it: Stripe's object plus the cross-sell decision."""
        session = self._session(session_id)
        body = self._session_json(session)
        body["cross_sell_offer"] = offer_json(session.offer, session) if session.offer else None
        body["cross_sell_ineligible"] = [refusal_json(r) for r in session.refusals]
        body["line_item_count"] = len(session.line_items)
        return body

    def add_cross_sell(self, session_id: str) -> dict[str, Any]:
        """The buyer adds the offered cross-sell: one line item, quantity 1.

        Raises:
            InvalidRequest: when nothing is offered, it is already added, or the session is not open.
        """
        session = self._open_session(session_id)
        if session.offer is None:
            raise InvalidRequest(f"{session_id} offers no cross-sell; see cross_sell_ineligible on "
                                 f"GET /sim/checkout/sessions/{session_id}", param="session")
        if session.cross_sell_item is not None:
            raise InvalidRequest("the cross-sell is already in the session; its quantity is fixed at 1",
                                 param="session")
        session.line_items.append(LineItemRecord(id=new_id("li_"), price=session.offer.price.id, quantity=1,
                                                 cross_sell=True))
        return self.sim_session_json(session_id)

    def remove_cross_sell_item(self, session_id: str) -> dict[str, Any]:
        """The buyer removes the cross-sell again; it is then offered again."""
        session = self._open_session(session_id)
        item = session.cross_sell_item
        if item is None:
            raise InvalidRequest(f"{session_id} has no cross-sell line item to remove", param="session")
        session.line_items.remove(item)
        return self.sim_session_json(session_id)

    def _open_session(self, session_id: str) -> SessionRecord:
        session = self._session(session_id)
        if session.status != "open":
            raise InvalidRequest(f"{session_id} is {session.status}; only an open session can be changed",
                                 param="session")
        return session

    def complete_session(self, session_id: str, outcome: str, *, email: str | None = None,
                         name: str | None = None) -> dict[str, Any]:
        """The buyer pays: set status and payment_status as Stripe would, and create its events.

        ``async_succeeded`` / ``async_failed`` also settle a session completed with ``async_pending``.
        """
        session = self._session(session_id)
        settling = outcome in ("async_succeeded", "async_failed")
        pending = session.status == "complete" and session.payment_status == "unpaid"
        if not (session.status == "open" or (settling and pending)):
            raise InvalidRequest(f"{session_id} is {session.status} (payment_status "
                                 f"{session.payment_status}); it cannot be completed with {outcome}",
                                 param="outcome")
        if session.status == "open":
            session.status = "complete"
            session.customer_email = email or session.customer_email or "buyer@example.com"
            session.customer_name = name or "Jenny Rosen"
            if session.mode == "subscription":
                session.subscription = new_id("sub_")
            elif session.mode == "payment" and outcome != "no_payment_required":
                session.payment_intent = new_id("pi_")
            session.payment_status = {"paid": "paid", "no_payment_required": "no_payment_required"}.get(
                outcome, "unpaid")
            self._events.emit(COMPLETED, self._session_json(session), AUTOMATIC)
        if outcome == "async_succeeded":
            session.payment_status = "paid"
            self._events.emit(ASYNC_SUCCEEDED, self._session_json(session), AUTOMATIC)
        elif outcome == "async_failed":
            self._events.emit(ASYNC_FAILED, self._session_json(session), AUTOMATIC)
        return self.sim_session_json(session_id)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """Expire an open session (``checkout.session.expired``)."""
        session = self._open_session(session_id)
        session.status = "expired"
        self._events.emit(EXPIRED, self._session_json(session), AUTOMATIC)
        return self.sim_session_json(session_id)


def _field(session: SessionRecord, name: str) -> str | None:
    """The value a list filter compares: a session field, or the email of ``customer_details``."""
    if name == "customer_details.email":
        return session.customer_email if session.status == "complete" or session.customer_email else None
    return getattr(session, name, None)
