"""One simulated Stripe account in memory: every object, behind one lock.

Methods take typed arguments (the Flask views parse requests) and return Stripe JSON dicts. Events
are created here, as Stripe creates them, and handed to ``on_event`` together with the endpoints
that want them; the delivery side only enqueues, so holding the lock meanwhile keeps event order.

The platform's account and each connected account (Stripe Connect) are separate stores. A connected
account's events carry ``account`` and go to its own endpoints and to the platform's ``connect``
endpoints; the platform's go to its endpoints that are not ``connect`` ones. (A connected store may
read the platform's endpoints while holding its own lock, never the other way round.)
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fulfillment.crosssell import Price, SessionContext, decide_offer
from fulfillment.events import ASYNC_FAILED, ASYNC_SUCCEEDED, COMPLETED, EXPIRED
from simulator import defaults
from simulator.config import SimConfig
from simulator.errors import InvalidRequest, ResourceExists, ResourceMissing
from simulator.expansion import NOTHING, Expansion
from simulator.paging import ANY_TIME, Page, Range, list_object, page
from simulator.resources import (
    EndpointRecord,
    LineItemRecord,
    PriceRecord,
    ProductRecord,
    SessionRecord,
    endpoint_json,
    line_item_json,
    new_id,
    offer_json,
    price_json,
    product_json,
    refusal_json,
    session_json,
)

EventHook = Callable[[dict[str, Any], Sequence[EndpointRecord]], object]


@dataclass(frozen=True)
class RequestInfo:
    """The API request that caused an event (``event.request``)."""

    id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class LineItemSpec:
    """One ``line_items[i]`` of a session creation request."""

    price: str
    quantity: int


AUTOMATIC = RequestInfo()  #: events Stripe creates on its own (Checkout completion, expiry)


class Store:
    """All objects of one simulated Stripe account."""

    def __init__(self, config: SimConfig, *, on_event: EventHook | None = None,
                 clock: Callable[[], float] = time.time, account: str | None = None,
                 platform: Store | None = None, livemode: bool | None = None) -> None:
        self.config = config
        self.account = account  #: the connected account's id; None for the platform's own account
        #: the mode of every object and event of this account (a live platform's connected account
        #: may act in test mode; Stripe then sends its test events to the live Connect endpoints too)
        self.livemode = config.livemode if livemode is None else livemode
        self._platform = platform
        self._clock = clock
        self._on_event = on_event
        self._lock = threading.RLock()
        self.products: dict[str, ProductRecord] = {}
        self.prices: dict[str, PriceRecord] = {}
        self.sessions: dict[str, SessionRecord] = {}
        self.events: list[dict[str, Any]] = []
        self._events_by_id: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, EndpointRecord] = {}
        catalog = config.catalog.for_account(account)
        self.cross_sells: dict[str, str] = dict(catalog.cross_sells)
        self.default_tax_behavior = catalog.default_tax_behavior

    def set_event_hook(self, hook: EventHook) -> None:
        """Send every new event to *hook* (the webhook dispatcher)."""
        self._on_event = hook

    def _now(self) -> int:
        return int(self._clock())

    # -- products and prices -------------------------------------------------------------------

    def create_product(self, *, name: str, product_id: str | None = None, active: bool = True,
                       description: str | None = None, metadata: dict[str, str] | None = None,
                       request: RequestInfo = AUTOMATIC) -> dict[str, Any]:
        """Create a product; *product_id* lets the caller choose its id, as Stripe allows."""
        with self._lock:
            pid = product_id or new_id("prod_", 14)
            if pid in self.products:
                raise ResourceExists(f"Product already exists: {pid!r}; choose another id or update it",
                                     param="id")
            product = ProductRecord(id=pid, name=name, created=self._now(), active=active,
                                    description=description, metadata=dict(metadata or {}), livemode=self.livemode)
            self.products[pid] = product
            body = product_json(product)
            self._emit("product.created", body, request)
            return body

    def _product(self, product_id: str, param: str = "id") -> ProductRecord:
        product = self.products.get(product_id)
        if product is None:
            raise ResourceMissing(f"No such product: '{product_id}'", param=param)
        return product

    def get_product(self, product_id: str) -> dict[str, Any]:
        """A product by id."""
        with self._lock:
            return product_json(self._product(product_id))

    def update_product(self, product_id: str, *, name: str | None = None, active: bool | None = None,
                       description: str | None = None, metadata: dict[str, str] | None = None,
                       request: RequestInfo = AUTOMATIC) -> dict[str, Any]:
        """Update a product; a metadata value of "" deletes that key."""
        with self._lock:
            product = self._product(product_id)
            previous = product_json(product)
            if name is not None:
                product.name = name
            if active is not None:
                product.active = active
            if description is not None:
                product.description = description
            for key, value in (metadata or {}).items():
                if value == "":
                    product.metadata.pop(key, None)
                else:
                    product.metadata[key] = value
            product.updated = self._now()
            body = product_json(product)
            changed = {key: previous[key] for key in body if previous[key] != body[key] and key != "updated"}
            if changed:
                self._emit("product.updated", body, request, previous_attributes=changed)
            return body

    def list_products(self, paging: Page, active: bool | None) -> dict[str, Any]:
        """Products, newest first."""
        with self._lock:
            products = [p for p in reversed(list(self.products.values())) if active is None or p.active == active]
            data, more = page(products, lambda p: p.id, paging)
            return list_object([product_json(p) for p in data], more, "/v1/products")

    def create_price(self, *, product: str, currency: str, unit_amount: int, interval: str | None = None,
                     interval_count: int | None = None, tax_behavior: str = "unspecified", active: bool = True,
                     nickname: str | None = None, lookup_key: str | None = None,
                     metadata: dict[str, str] | None = None, request: RequestInfo = AUTOMATIC) -> dict[str, Any]:
        """Create a price; an *interval* makes it recurring."""
        with self._lock:
            self._product(product, param="product")
            price = PriceRecord(id=new_id("price_"), product=product, currency=currency, unit_amount=unit_amount,
                                livemode=self.livemode,
                                created=self._now(), type="recurring" if interval else "one_time",
                                interval=interval, interval_count=(interval_count or 1) if interval else None,
                                tax_behavior=tax_behavior, active=active, nickname=nickname,
                                lookup_key=lookup_key, metadata=dict(metadata or {}))
            self.prices[price.id] = price
            body = price_json(price)
            self._emit("price.created", body, request)
            return body

    def _price(self, price_id: str, param: str = "id") -> PriceRecord:
        price = self.prices.get(price_id)
        if price is None:
            raise ResourceMissing(f"No such price: '{price_id}'", param=param)
        return price

    def _price_json(self, price: PriceRecord, expand: Expansion = NOTHING) -> dict[str, Any]:
        return price_json(price, product_json(self.products[price.product]) if "product" in expand else None)

    def get_price(self, price_id: str, *, expand: Expansion = NOTHING) -> dict[str, Any]:
        """A price by id."""
        with self._lock:
            return self._price_json(self._price(price_id), expand)

    def list_prices(self, paging: Page, *, product: str | None, active: bool | None,
                    expand: Expansion = NOTHING) -> dict[str, Any]:
        """Prices, newest first, optionally of one product / active state."""
        with self._lock:
            prices = [p for p in reversed(list(self.prices.values()))
                      if (product is None or p.product == product) and (active is None or p.active == active)]
            data, more = page(prices, lambda p: p.id, paging)
            return list_object([self._price_json(p, expand["data"]) for p in data], more, "/v1/prices")

    def prices_of(self, product_id: str) -> list[Price]:
        """Every price of *product_id* as the cross-sell rules see them."""
        with self._lock:
            product = self.products.get(product_id)
            active = product.active if product else False
            return [p.facts(active) for p in self.prices.values() if p.product == product_id]

    # -- the Dashboard: cross-sells and tax settings ---------------------------------------------

    def set_cross_sell(self, product_id: str, target: str) -> dict[str, Any]:
        """Make *product_id* offer *target* as its cross-sell (replacing any previous one)."""
        with self._lock:
            self._product(product_id)
            self._product(target, param="product")
            if target == product_id:
                raise InvalidRequest("a product cannot cross-sell itself", param="product")
            self.cross_sells[product_id] = target
            return self.cross_sell_json(product_id)

    def remove_cross_sell(self, product_id: str) -> dict[str, Any]:
        """Stop offering *product_id*'s cross-sell to new sessions."""
        with self._lock:
            self._product(product_id)
            self.cross_sells.pop(product_id, None)
            return self.cross_sell_json(product_id)

    def cross_sell_json(self, product_id: str) -> dict[str, Any]:
        """The Dashboard's cross-sell setting of one product."""
        with self._lock:
            return {"object": "sim.cross_sell", "product": product_id, "cross_sell": self.cross_sells.get(product_id)}

    def set_default_tax_behavior(self, behavior: str) -> dict[str, Any]:
        """Set the account's default tax behavior (Tax Settings); used by sessions created from now on."""
        with self._lock:
            self.default_tax_behavior = behavior
            return self.account_json()

    def account_json(self) -> dict[str, Any]:
        """The Dashboard settings the simulator keeps."""
        with self._lock:
            return {"object": "sim.account", "account": self.account,
                    "default_tax_behavior": self.default_tax_behavior, "cross_sells": dict(self.cross_sells)}

    # -- Checkout Sessions -----------------------------------------------------------------------

    def create_session(self, *, mode: str, line_items: Sequence[LineItemSpec], base_url: str,
                       automatic_tax: bool = False, subscription_upsells: bool = False,
                       metadata: dict[str, str] | None = None, client_reference_id: str | None = None,
                       customer_email: str | None = None, success_url: str | None = None,
                       cancel_url: str | None = None) -> dict[str, Any]:
        """Create a Checkout Session and decide its cross-sell offer with the rules of the seed.

        Raises:
            InvalidRequest: when the line items do not fit the mode, or their currencies differ.
        """
        with self._lock:
            prices = self._session_prices(mode, line_items)
            currency = prices[0].currency if prices else None
            sid = new_id("cs_live_" if self.livemode else "cs_test_", 58)
            now = self._now()
            session = SessionRecord(
                id=sid, livemode=self.livemode, created=now, expires_at=now + defaults.SESSION_TTL_S, mode=mode,
                currency=currency,
                line_items=[LineItemRecord(id=new_id("li_"), price=spec.price, quantity=spec.quantity)
                            for spec in line_items],
                url=f"{base_url.rstrip('/')}/sim/checkout/sessions/{sid}", automatic_tax=automatic_tax,
                subscription_upsells=subscription_upsells, default_tax_behavior=self.default_tax_behavior,
                metadata=dict(metadata or {}), client_reference_id=client_reference_id,
                customer_email=customer_email, success_url=success_url, cancel_url=cancel_url,
            )
            context = SessionContext(mode=mode, prices=tuple(p.facts() for p in prices),
                                     automatic_tax=automatic_tax, subscription_upsells=subscription_upsells,
                                     default_tax_behavior=self.default_tax_behavior)
            products = list(dict.fromkeys(p.product for p in prices))
            session.offer, session.refusals = decide_offer(products, self.cross_sells, self.prices_of, context)
            self.sessions[sid] = session
            return self._session_json(session)

    def _session_prices(self, mode: str, line_items: Sequence[LineItemSpec]) -> list[PriceRecord]:
        if mode != "setup" and not line_items:
            raise InvalidRequest(f"line_items is required in {mode} mode", param="line_items",
                                 code="parameter_missing")
        if len(line_items) > self.config.max_line_items:
            raise InvalidRequest(f"at most {self.config.max_line_items} line_items are allowed "
                                 f"(got {len(line_items)})", param="line_items")
        prices = [self._price(spec.price, param=f"line_items[{i}][price]") for i, spec in enumerate(line_items)]
        for i, price in enumerate(prices):
            if not price.active or not self.products[price.product].active:
                raise InvalidRequest(f"The price {price.id!r} is not active (or its product is archived)",
                                     param=f"line_items[{i}][price]")
            if price.currency != prices[0].currency:
                raise InvalidRequest(f"All line_items must share one currency: {price.currency} differs from "
                                     f"{prices[0].currency}", param=f"line_items[{i}][price]")
        recurring = [p for p in prices if p.type == "recurring"]
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
        with self._lock:
            return session_id in self.sessions

    def _session(self, session_id: str) -> SessionRecord:
        session = self.sessions.get(session_id)
        if session is None:
            raise ResourceMissing(f"No such checkout.session: '{session_id}'", param="session")
        return session

    def _amount(self, item: LineItemRecord) -> int:
        return self.prices[item.price].unit_amount * item.quantity

    def _session_json(self, session: SessionRecord, expand: Expansion = NOTHING) -> dict[str, Any]:
        body = session_json(session, self._amount)
        if "line_items" in expand:  # the first page only, as on Stripe; has_more tells
            first = session.line_items[:defaults.EXPANDED_LINE_ITEMS]
            body["line_items"] = list_object(
                [self._item_json(item, expand["line_items"]["data"]) for item in first],
                len(session.line_items) > len(first), f"/v1/checkout/sessions/{session.id}/line_items")
        return body

    def _item_json(self, item: LineItemRecord, expand: Expansion = NOTHING) -> dict[str, Any]:
        price = self.prices[item.price]
        return line_item_json(item, price, self.products[price.product], self._price_json(price, expand["price"]))

    def get_session(self, session_id: str, *, expand: Expansion = NOTHING) -> dict[str, Any]:
        """A session; ``line_items`` expanded holds the first page only, as on Stripe."""
        with self._lock:
            return self._session_json(self._session(session_id), expand)

    def list_sessions(self, paging: Page, *, status: str | None = None, created: Range = ANY_TIME,
                      expand: Expansion = NOTHING) -> dict[str, Any]:
        """Sessions, newest first, optionally of one *status* and *created* in range."""
        with self._lock:
            sessions = [s for s in reversed(list(self.sessions.values()))
                        if (status is None or s.status == status) and created.holds(s.created)]
            data, more = page(sessions, lambda s: s.id, paging)
            return list_object([self._session_json(s, expand["data"]) for s in data], more, "/v1/checkout/sessions")

    def list_line_items(self, session_id: str, paging: Page, *, expand: Expansion = NOTHING) -> dict[str, Any]:
        """One page of a session's line items, in session order."""
        with self._lock:
            session = self._session(session_id)
            data, more = page(session.line_items, lambda item: item.id, paging)
            return list_object([self._item_json(item, expand["data"]) for item in data], more,
                               f"/v1/checkout/sessions/{session.id}/line_items")

    def sim_session_json(self, session_id: str) -> dict[str, Any]:
        """The session as the simulator sees it: Stripe's object plus the cross-sell decision."""
        with self._lock:
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
        with self._lock:
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
        with self._lock:
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
        with self._lock:
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
                self._emit(COMPLETED, self._session_json(session), AUTOMATIC)
            if outcome == "async_succeeded":
                session.payment_status = "paid"
                self._emit(ASYNC_SUCCEEDED, self._session_json(session), AUTOMATIC)
            elif outcome == "async_failed":
                self._emit(ASYNC_FAILED, self._session_json(session), AUTOMATIC)
            return self.sim_session_json(session_id)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """Expire an open session (``checkout.session.expired``)."""
        with self._lock:
            session = self._open_session(session_id)
            session.status = "expired"
            self._emit(EXPIRED, self._session_json(session), AUTOMATIC)
            return self.sim_session_json(session_id)

    # -- events ------------------------------------------------------------------------------------

    def _emit(self, event_type: str, obj: dict[str, Any], request: RequestInfo,
              previous_attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        targets = self._targets(event_type)
        data: dict[str, Any] = {"object": obj}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        event: dict[str, Any] = {
            "id": new_id("evt_"), "object": "event", "api_version": self.config.api_version,
            "created": self._now(), "data": data, "livemode": self.livemode, "pending_webhooks": len(targets),
            "request": {"id": request.id, "idempotency_key": request.idempotency_key}, "type": event_type,
        }
        if self.account is not None:
            event["account"] = self.account
        self.events.append(event)
        self._events_by_id[event["id"]] = event
        if self._on_event is not None:
            self._on_event(event, targets)
        return event

    def has_event(self, event_id: str) -> bool:
        """Whether this account has the event *event_id*."""
        with self._lock:
            return event_id in self._events_by_id

    def get_event(self, event_id: str) -> dict[str, Any]:
        """An event by id."""
        with self._lock:
            event = self._events_by_id.get(event_id)
            if event is None:
                raise ResourceMissing(f"No such event: '{event_id}'", param="id")
            return event

    def list_events(self, paging: Page, *, types: Sequence[str] = (), created: Range = ANY_TIME,
                    where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Events, newest first, of *types* (``*`` is a wildcard), *created* in range, and *where* holds."""
        pattern = re.compile("|".join(".*".join(map(re.escape, t.split("*"))) for t in types)) if types else None
        with self._lock:
            events = [e for e in reversed(self.events)
                      if (pattern is None or pattern.fullmatch(e["type"])) and created.holds(e["created"])
                      and (where is None or where(e))]
            data, more = page(events, lambda e: e["id"], paging)
            return list_object(data, more, "/v1/events")

    # -- webhook endpoints ---------------------------------------------------------------------------

    def create_endpoint(self, *, url: str, enabled_events: list[str], secret: str | None = None,
                        description: str | None = None, metadata: dict[str, str] | None = None,
                        api_version: str | None = None, connect: bool = False) -> dict[str, Any]:
        """Register a webhook endpoint; the answer carries its ``whsec_`` secret (only this once)."""
        with self._lock:
            endpoint = EndpointRecord(id=new_id("we_"), url=url, enabled_events=list(enabled_events),
                                      created=self._now(), secrets=[(secret or new_id("whsec_", 32), None)],
                                      description=description, metadata=dict(metadata or {}),
                                      api_version=api_version, connect=connect, livemode=self.livemode)
            self.endpoints[endpoint.id] = endpoint
            return endpoint_json(endpoint, with_secret=True)

    def _endpoint(self, endpoint_id: str) -> EndpointRecord:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise ResourceMissing(f"No such webhook endpoint: '{endpoint_id}'", param="id")
        return endpoint

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """A webhook endpoint by id (without its secret)."""
        with self._lock:
            return endpoint_json(self._endpoint(endpoint_id))

    def update_endpoint(self, endpoint_id: str, *, url: str | None = None, enabled_events: list[str] | None = None,
                        disabled: bool | None = None) -> dict[str, Any]:
        """Change an endpoint's url, events or status."""
        with self._lock:
            endpoint = self._endpoint(endpoint_id)
            if url is not None:
                endpoint.url = url
            if enabled_events:
                endpoint.enabled_events = list(enabled_events)
            if disabled is not None:
                endpoint.status = "disabled" if disabled else "enabled"
            return endpoint_json(endpoint)

    def delete_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """Delete an endpoint; pending retries to it stop."""
        with self._lock:
            self._endpoint(endpoint_id)
            del self.endpoints[endpoint_id]
            return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}

    def list_endpoints(self, paging: Page) -> dict[str, Any]:
        """Endpoints, newest first."""
        with self._lock:
            endpoints = list(reversed(list(self.endpoints.values())))
            data, more = page(endpoints, lambda e: e.id, paging)
            return list_object([endpoint_json(e) for e in data], more, "/v1/webhook_endpoints")

    def roll_secret(self, endpoint_id: str, *, expires_in_s: float, secret: str | None = None) -> dict[str, Any]:
        """Add a new signing secret; the current ones keep signing for *expires_in_s* more seconds."""
        with self._lock:
            endpoint = self._endpoint(endpoint_id)
            now = self._clock()
            expiry = now + expires_in_s
            kept = [(old, expiry if until is None else min(until, expiry)) for old, until in endpoint.secrets
                    if until is None or until > now]
            new = secret or new_id("whsec_", 32)
            endpoint.secrets = [(new, None), *kept]
            body = endpoint_json(endpoint)
            body["secret"] = new
            body["previous_secret_expires_at"] = int(expiry)
            return body

    def endpoint_secrets(self, endpoint_id: str) -> list[str] | None:
        """The secrets signing deliveries to *endpoint_id* now; None once it is deleted or disabled."""
        with self._lock:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None or endpoint.status != "enabled":
                return None
            return endpoint.active_secrets(self._clock())

    def _targets(self, event_type: str) -> list[EndpointRecord]:
        """The endpoints an event of this account goes to: its own, and the platform's Connect ones."""
        with self._lock:
            own = [e for e in self.endpoints.values() if not e.connect and e.wants(event_type)]
        if self._platform is None:
            return own
        return own + self._platform.connect_endpoints(event_type)

    def connect_endpoints(self, event_type: str) -> list[EndpointRecord]:
        """This (platform) account's ``connect`` endpoints that want *event_type*."""
        with self._lock:
            return [e for e in self.endpoints.values() if e.connect and e.wants(event_type)]

    def endpoints_for(self, event: dict[str, Any], endpoint_id: str | None = None) -> list[EndpointRecord]:
        """The endpoints that receive *event* (only *endpoint_id* when given, the platform's included)."""
        if endpoint_id is None:
            return self._targets(event["type"])
        with self._lock:
            if endpoint_id in self.endpoints or self._platform is None:
                return [self._endpoint(endpoint_id)]
        return [self._platform._endpoint(endpoint_id)]
