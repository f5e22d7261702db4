"""An account's catalog: products and prices, and the Dashboard's cross-sells between products.

Sessions read prices and products from here; the cross-sell rules read a product's prices through
:meth:`Catalog.prices_of`. A cross-sell is set here, where its products are checked; the relation
itself is kept with the account's other Dashboard settings (:class:`~simulator.store.account.Account`).
Like every resource store, it assumes its store's lock is held.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fulfillment.crosssell import Price
from simulator.errors import InvalidRequest, ResourceExists, found
from simulator.expansion import NOTHING, Expansion
from simulator.paging import Page, list_object, page
from simulator.resources import PriceRecord, ProductRecord, new_id, price_json, product_json
from simulator.store.account import Account
from simulator.store.events import AUTOMATIC, Events, RequestInfo


class Catalog:
    """The products and prices of one account, and which product offers which as its cross-sell."""

    def __init__(self, account: Account, events: Events) -> None:
        self._account = account
        self._events = events
        self.products: dict[str, ProductRecord] = {}
        self.prices: dict[str, PriceRecord] = {}

    # -- products ----------------------------------------------------------------------------------

    def create_product(self, *, name: str, product_id: str | None = None, active: bool = True,
                       description: str | None = None, metadata: dict[str, str] | None = None,
                       request: RequestInfo = AUTOMATIC) -> dict[str, Any]:
        """Create a product; *product_id* lets the caller choose its id, as Stripe allows."""
        pid = product_id or new_id("prod_", 14)
        if pid in self.products:
            raise ResourceExists(f"Product already exists: {pid!r}; choose another id or update it", param="id")
        product = ProductRecord(id=pid, name=name, created=self._account.now(), active=active,
                                description=description, metadata=dict(metadata or {}),
                                livemode=self._account.livemode)
        self.products[pid] = product
        body = product_json(product)
        self._events.emit("product.created", body, request)
        return body

    def product(self, product_id: str, param: str = "id") -> ProductRecord:
        """The product *product_id*; Stripe's 404 naming *param* when there is none."""
        return found(self.products, product_id, "product", param=param)

    def get_product(self, product_id: str) -> dict[str, Any]:
        """A product by id."""
        return product_json(self.product(product_id))

    def update_product(self, product_id: str, *, name: str | None = None, active: bool | None = None,
                       description: str | None = None, metadata: dict[str, str] | None = None,
                       request: RequestInfo = AUTOMATIC) -> dict[str, Any]:
        """Update a product; a metadata value of "" deletes that key."""
        product = self.product(product_id)
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
        product.updated = self._account.now()
        body = product_json(product)
        changed = {key: previous[key] for key in body if previous[key] != body[key] and key != "updated"}
        if changed:
            self._events.emit("product.updated", body, request, previous_attributes=changed)
        return body

    def list_products(self, paging: Page, active: bool | None,
                      where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Products, newest first, those *where* holds (on the product's JSON) only."""
        products = [p for p in reversed(list(self.products.values())) if (active is None or p.active == active)
                    and (where is None or where(product_json(p)))]
        data, more = page(products, lambda p: p.id, paging)
        return list_object([product_json(p) for p in data], more, "/v1/products")

    # -- prices ------------------------------------------------------------------------------------

    def create_price(self, *, product: str, currency: str, unit_amount: int, interval: str | None = None,
                     interval_count: int | None = None, tax_behavior: str = "unspecified", active: bool = True,
                     nickname: str | None = None, lookup_key: str | None = None,
                     metadata: dict[str, str] | None = None, request: RequestInfo = AUTOMATIC) -> dict[str, Any]:
        """Create a price; an *interval* makes it recurring."""
        self.product(product, param="product")
        price = PriceRecord(id=new_id("price_"), product=product, currency=currency, unit_amount=unit_amount,
                            livemode=self._account.livemode,
                            created=self._account.now(), type="recurring" if interval else "one_time",
                            interval=interval, interval_count=(interval_count or 1) if interval else None,
                            tax_behavior=tax_behavior, active=active, nickname=nickname,
                            lookup_key=lookup_key, metadata=dict(metadata or {}))
        self.prices[price.id] = price
        body = price_json(price)
        self._events.emit("price.created", body, request)
        return body

    def price(self, price_id: str, param: str = "id") -> PriceRecord:
        """The price *price_id*; Stripe's 404 naming *param* when there is none."""
        return found(self.prices, price_id, "price", param=param)

    def price_json(self, price: PriceRecord, expand: Expansion = NOTHING) -> dict[str, Any]:
        """*price* as Stripe's JSON, its ``product`` embedded when *expand* asks for it."""
        return price_json(price, product_json(self.products[price.product]) if "product" in expand else None)

    def get_price(self, price_id: str, *, expand: Expansion = NOTHING) -> dict[str, Any]:
        """A price by id."""
        return self.price_json(self.price(price_id), expand)

    def list_prices(self, paging: Page, *, product: str | None, active: bool | None,
                    expand: Expansion = NOTHING, where: Callable[[dict[str, Any]], bool] | None = None,
                    ) -> dict[str, Any]:
        """Prices, newest first, optionally of one product / active state, those *where* holds (on the
        price's unexpanded JSON) only."""
        prices = [p for p in reversed(list(self.prices.values()))
                  if (product is None or p.product == product) and (active is None or p.active == active)
                  and (where is None or where(self.price_json(p)))]
        data, more = page(prices, lambda p: p.id, paging)
        return list_object([self.price_json(p, expand["data"]) for p in data], more, "/v1/prices")

    def prices_of(self, product_id: str) -> list[Price]:
        """Every price of *product_id* as the cross-sell rules see them."""
        product = self.products.get(product_id)
        active = product.active if product else False
        return [p.facts(active) for p in self.prices.values() if p.product == product_id]

    # -- the Dashboard's cross-sells -----------------------------------------------------------------

    def set_cross_sell(self, product_id: str, target: str) -> dict[str, Any]:
        """Make *product_id* offer *target* as its cross-sell (replacing any previous one)."""
        self.product(product_id)
        self.product(target, param="product")
        if target == product_id:
            raise InvalidRequest("a product cannot cross-sell itself", param="product")
        self._account.cross_sells[product_id] = target
        return self.cross_sell_json(product_id)

    def remove_cross_sell(self, product_id: str) -> dict[str, Any]:
        """Stop offering *product_id*'s cross-sell to new sessions."""
        self.product(product_id)
        self._account.cross_sells.pop(product_id, None)
        return self.cross_sell_json(product_id)

    def cross_sell_json(self, product_id: str) -> dict[str, Any]:
        """The Dashboard's cross-sell setting of one product."""
        return {"object": "sim.cross_sell", "product": product_id,
                "cross_sell": self._account.cross_sells.get(product_id)}
