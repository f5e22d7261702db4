"""A buyer and a merchant on the simulator: a catalog with a cross-sell, and Checkout purchases."""
from __future__ import annotations

import threading
from typing import Any

from simulator.client import SimClient

PRO = "prod_cf_pro"  #: the primary product
DEPLOY = "prod_cf_deploy"  #: its cross-sell (the seed's "Professional Services: Deployment")


def catalog_toml(target_url: str) -> str:
    """The catalog both the simulator and the worker read: PRO cross-sells DEPLOY, all via http."""
    return f"""
[account]
default_tax_behavior = "exclusive"

[defaults]
handler = "http"
options = {{ url = "{target_url}" }}

[products.{PRO}]
name = "Togethere Professional"
cross_sell = "{DEPLOY}"

[products.{DEPLOY}]
name = "Professional Services: Deployment"
"""


class Shop:
    """Creates products once, then drives buyers through Checkout on the simulator."""

    def __init__(self, sim: SimClient) -> None:
        self.sim = sim
        self._prices: dict[str, str] = {}

    def price_of(self, product_id: str, unit_amount: int = 1000) -> str:
        """The one price of *product_id*, creating the product and price on first use."""
        if product_id not in self._prices:
            self.sim.post("/v1/products", {"id": product_id, "name": product_id})
            price = self.sim.post("/v1/prices", {"product": product_id, "currency": "usd",
                                                 "unit_amount": unit_amount, "tax_behavior": "exclusive"})
            self._prices[product_id] = price["id"]
        return self._prices[product_id]

    def open_session(self, *, extra_items: int = 0, quantity: int = 1) -> dict[str, Any]:
        """A payment-mode session for PRO (plus *extra_items* other products)."""
        self.price_of(DEPLOY, 1500)
        products = [PRO] + [f"prod_cf_extra_{n:03d}" for n in range(extra_items)]
        line_items = [{"price": self.price_of(pid, 5000 if pid == PRO else 700), "quantity": quantity}
                      for pid in products]
        return self.sim.post("/v1/checkout/sessions", {"mode": "payment", "line_items": line_items,
                                                       "success_url": "https://example.com/done"})

    def buy(self, *, cross_sell: bool = False, extra_items: int = 0, outcome: str = "paid") -> str:
        """One buyer: open a session, maybe add the offered cross-sell, pay. Returns the session id."""
        session = self.open_session(extra_items=extra_items)
        if cross_sell:
            self.sim.post(f"/sim/checkout/sessions/{session['id']}/cross_sell")
        self.sim.post(f"/sim/checkout/sessions/{session['id']}/complete",
                      {"outcome": outcome, "email": "jane.doe@example.com"})
        return str(session["id"])

    def events_of(self, session_id: str) -> list[dict[str, Any]]:
        """Every event the simulator created for a session, oldest first."""
        events = self.sim.get("/v1/events", {"limit": 100})["data"]
        return sorted((e for e in events if e["data"]["object"].get("id") == session_id),
                      key=lambda e: (e["created"], e["id"]))


class Buyers:
    """Buyers paying for orders (every second one with the cross-sell, some with extra items) until
    the ``with`` block ends; the sessions bought and the errors met are kept."""

    def __init__(self, shop: Shop, *, buyers: int, pace_s: float) -> None:
        self.shop = shop
        self.pace_s = pace_s  #: each buyer's pause between purchases
        self.sessions: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._buy, args=(n,), daemon=True) for n in range(buyers)]

    def _buy(self, buyer: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:  # the simulator never depends on Redis: only deliveries to the receiver fail meanwhile
                self.sessions.append(self.shop.buy(cross_sell=n % 2 == 0, extra_items=(n + buyer) % 3))
            except Exception as error:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(error))
            self._stop.wait(self.pace_s)

    def __enter__(self) -> Buyers:
        self.shop.open_session(extra_items=2)  # creates every product and price once (not thread-safe)
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
