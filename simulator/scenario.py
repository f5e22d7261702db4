"""Scripted buyers: the demo catalog and one purchase through Checkout, on a running simulator.

``crossfill trigger`` runs one purchase; ``demo`` can run many. Everything goes through
:class:`simulator.client.SimClient`, so this works against any simulator over HTTP.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fulfillment.events import ASYNC_FAILED, ASYNC_SUCCEEDED, COMPLETED, EXPIRED
from simulator.client import SimClient
from simulator.errors import RemoteError
from simulator.resources import OUTCOMES

PRO = "prod_crossfill_pro"  #: the primary product; its Dashboard cross-sell is DEPLOY
DEPLOY = "prod_crossfill_deploy"  #: the cross-sell product (one one-time price)
EXTRA = "prod_crossfill_extra_{:03d}"  #: the extra products of ``--items N`` (N-1 of them)
CURRENCY = "usd"

#: (product id, name, unit amount in cents) of the fixed demo products.
DEMO_PRODUCTS = ((PRO, "Crossfill Professional", 4900), (DEPLOY, "Professional Services: Deployment", 15000))

#: The catalog config (``CROSSFILL_CATALOG``) matching the demo products, for the worker to read.
DEMO_CATALOG_PATH = Path(__file__).with_name("demo_catalog.toml")

#: What each trigger-able event type asks of the buyer.
EVENT_OUTCOMES = {
    COMPLETED: OUTCOMES,
    ASYNC_SUCCEEDED: ("async_succeeded",),
    ASYNC_FAILED: ("async_failed",),
    EXPIRED: ("expired",),
}
BUSY_RETRIES = 20  #: tries while another trigger holds the same idempotency key (409)
BUSY_WAIT_S = 0.05  #: pause between those tries, seconds


def ensure_account(platform: SimClient, account_id: str) -> None:
    """Connect *account_id* to the platform unless it already is (safe to run concurrently)."""
    _ensure(platform, f"/v1/accounts/{account_id}",
            lambda: platform.post("/v1/accounts", {"type": "standard", "sim": {"id": account_id}}))


def _ensure(client: SimClient, path: str, create: Callable[[], object]) -> None:
    """Create the object at *path* unless it exists; losing a race to another creator is fine."""
    try:
        client.get(path)
        return
    except RemoteError as error:
        if error.status != 404:
            raise
    try:
        create()
    except RemoteError as error:
        if error.status != 400 or error.body.get("error", {}).get("code") != "resource_already_exists":
            raise


@dataclass(frozen=True)
class Purchase:
    """What one scripted buyer did, and the session it left behind."""

    session_id: str
    outcome: str
    account: str | None  #: the connected account it was bought from; None for the platform
    line_items: int  #: line items at completion, the cross-sell included
    cross_sell: str | None  #: the cross-sell line item id, when it was bought
    steps: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The purchase as ``crossfill trigger --json`` prints it."""
        return {"session": self.session_id, "account": self.account, "outcome": self.outcome,
                "line_items": self.line_items,
                "cross_sell_line_item": self.cross_sell, "steps": list(self.steps)}


def ensure_demo_catalog(client: SimClient, *, extra_products: int = 0) -> dict[str, str]:
    """Create the demo products (if missing), one price each, and the Dashboard cross-sell.

    Safe to run concurrently and repeatedly: ids are fixed and prices are created under fixed
    idempotency keys, so a product never gets a second price (which would break rule 1).

    Returns:
        product id → its price id.
    """
    wanted = [*DEMO_PRODUCTS, *((EXTRA.format(n), f"Extra item {n}", 100 + n) for n in range(1, extra_products + 1))]
    prices = {}
    for product_id, name, amount in wanted:
        _ensure_product(client, product_id, name)
        prices[product_id] = _ensure_price(client, product_id, amount)
    client.post(f"/sim/products/{PRO}/cross_sell", {"product": DEPLOY})
    return prices


def _ensure_product(client: SimClient, product_id: str, name: str) -> None:
    _ensure(client, f"/v1/products/{product_id}", lambda: _busy_retry(
        client, "/v1/products", {"id": product_id, "name": name}, f"crossfill-demo-{product_id}"))


def _ensure_price(client: SimClient, product_id: str, amount: int) -> str:
    listed = client.get("/v1/prices", {"product": product_id, "active": True, "limit": 1})["data"]
    if listed:
        return str(listed[0]["id"])
    price = _busy_retry(client, "/v1/prices", {"product": product_id, "currency": CURRENCY, "unit_amount": amount},
                        f"crossfill-demo-price-{product_id}")
    return str(price["id"])


def _busy_retry(client: SimClient, path: str, params: dict[str, Any], key: str) -> dict[str, Any]:
    for _ in range(BUSY_RETRIES):
        try:
            return client.post(path, params, idempotency_key=key)
        except RemoteError as error:
            if error.status != 409:
                raise
            time.sleep(BUSY_WAIT_S)
    return client.post(path, params, idempotency_key=key)


def purchase(client: SimClient, *, items: int = 1, cross_sell: bool = False, remove_cross_sell: bool = False,
             outcome: str = "paid", email: str | None = None, metadata: dict[str, str] | None = None) -> Purchase:
    """Drive one buyer through Checkout on the demo catalog (of *client*'s account).

    Args:
        items: line items the session is created with: the Pro product, then ``items - 1`` extras.
        cross_sell: add the offered cross-sell before paying.
        remove_cross_sell: add it, then remove it (with *cross_sell* too: add it back after).
        outcome: ``paid``, ``no_payment_required``, ``async_pending``, ``async_succeeded``,
            ``async_failed``, or ``expired`` (the session expires instead of completing).

    Raises:
        RemoteError: when the simulator refuses a step (e.g. no cross-sell is offered).
    """
    prices = ensure_demo_catalog(client, extra_products=max(0, items - 1))
    line_items = [{"price": prices[PRO], "quantity": 1}]
    line_items += [{"price": prices[EXTRA.format(n)], "quantity": 1} for n in range(1, items)]
    session = client.post("/v1/checkout/sessions", {
        "mode": "payment", "line_items": line_items, "customer_email": email,
        "success_url": "http://127.0.0.1/success", "metadata": metadata or {}})
    sid = session["id"]
    steps = ["created"]
    path = f"/sim/checkout/sessions/{sid}/cross_sell"
    if remove_cross_sell:
        client.post(path)
        client.delete(path)
        steps += ["cross_sell_added", "cross_sell_removed"]
    if cross_sell:
        client.post(path)
        steps.append("cross_sell_added")
    if outcome == "expired":
        view = client.post(f"/sim/checkout/sessions/{sid}/expire")
    else:
        view = client.post(f"/sim/checkout/sessions/{sid}/complete", {"outcome": outcome, "email": email})
    steps.append(outcome)
    offer = view.get("cross_sell_offer") or {}
    return Purchase(session_id=sid, outcome=outcome, account=client.account,
                    line_items=int(view["line_item_count"]),
                    cross_sell=offer.get("line_item"), steps=tuple(steps))
