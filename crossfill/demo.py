"""The demo: the whole loop on the embedded defaults, with scripted buyers, checked (``crossfill demo``).

Starts Redis, the simulator, the receiver and a worker; runs purchases with and without the
cross-sell, one removed then added again, an async payment that succeeds and one that fails, and a
session of 100 line items — all announced by snapshot events (a webhook endpoint) — then one purchase
announced by a thin event only (an event destination) and one announced by both at once (a platform
migrating); waits for every order; prints a table; stops everything; exits 0 only when every order
ended as expected.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from crossfill.embedded import free_port, start_embedded
from crossfill.local import BOTH, resolve_secrets, start_local
from crossfill.supervisor import Supervisor
from fulfillment.ledger import Ledger
from fulfillment.records import Order
from fulfillment.settings import Settings
from fulfillment.store import connect
from simulator.client import SimClient
from simulator.scenario import DEPLOY, purchase
from webhooks.settings import ReceiverSettings

WAIT_S = 120.0  #: longest wait for every order to settle, seconds
Echo = Callable[[str], None]


@dataclass(frozen=True)
class Scenario:
    """One scripted buyer and what crossfill must make of it."""

    label: str
    run: Callable[[SimClient], str]  #: drives the buyer; returns the session id
    status: str  #: the order status expected at the end
    items: int  #: line items expected in the order
    cross_sells: int  #: of which cross-sells


def _buy(**options: Any) -> Callable[[SimClient], str]:
    return lambda client: purchase(client, email="demo.buyer@example.com", **options).session_id


def _async(second: str) -> Callable[[SimClient], str]:
    def run(client: SimClient) -> str:
        session_id = purchase(client, outcome="async_pending", cross_sell=True).session_id
        time.sleep(0.5)  # the buyer's bank takes a moment
        client.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": second})
        return session_id

    return run


SCENARIOS = (
    Scenario("primary only", _buy(), "fulfilled", 1, 0),
    Scenario("primary + cross-sell", _buy(cross_sell=True), "fulfilled", 2, 1),
    Scenario("cross-sell added, removed", _buy(remove_cross_sell=True), "fulfilled", 1, 0),
    Scenario("cross-sell removed, added again", _buy(cross_sell=True, remove_cross_sell=True), "fulfilled", 2, 1),
    Scenario("async payment succeeded", _async("async_succeeded"), "fulfilled", 2, 1),
    Scenario("async payment failed", _async("async_failed"), "payment_failed", 0, 0),
    # 100 line items (Stripe's most in payment mode): more than the first page a session embeds.
    Scenario("99 line items + cross-sell", _buy(items=99, cross_sell=True), "fulfilled", 100, 1),
)


#: Purchases announced by thin events: (scenario, send snapshot events too).
THIN_SCENARIOS = (
    (Scenario("thin event only", _buy(cross_sell=True), "fulfilled", 2, 1), False),
    (Scenario("snapshot + thin (migrating)", _buy(cross_sell=True), "fulfilled", 2, 1), True),
)


@dataclass(frozen=True)
class Routes:
    """Which of the simulator's two ways to the receiver are on: the webhook endpoint (snapshot
    events) and the event destination (thin events)."""

    client: SimClient
    endpoint_id: str
    destination_id: str

    def use(self, *, snapshot: bool, thin: bool) -> None:
        """Switch them, once every delivery under way has ended (a disabled route stops its retries)."""
        self.client.post("/sim/deliveries/wait", {"timeout_s": "30"})
        self.client.post(f"/v1/webhook_endpoints/{self.endpoint_id}", {"disabled": "false" if snapshot else "true"})
        self.client.post(f"/v2/core/event_destinations/{self.destination_id}/{'enable' if thin else 'disable'}")


def run_demo(settings: Settings, data_dir: Path, echo: Echo) -> bool:
    """Run the scenarios on a fresh stack in *data_dir* (emptied first), print a table; True when all hold.

    Only the environment's non-local settings are kept from *settings* (handlers, retries): the
    demo runs on its own embedded Redis, simulator, secret and port.
    """
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = replace(settings, data_dir=data_dir, redis_url=None, catalog_path=None).with_stripe(api_key=None)
    receiver = ReceiverSettings(port=free_port())
    supervisor = Supervisor()
    url, redis_proc = start_embedded(data_dir)
    if redis_proc is not None:
        supervisor.adopt("redis", redis_proc)
    settings = settings.with_redis(url)
    receiver = resolve_secrets(settings, receiver, generate=True)
    try:
        echo(f"starting Redis, the simulator, the receiver and a worker (logs in {data_dir}/logs) ...")
        stack = start_local(settings, receiver, concurrency=8, sim_port=free_port(), supervisor=supervisor,
                            log_dir=data_dir / "logs", payload=BOTH)
        assert stack.sim_url is not None and stack.destination_id is not None
        with SimClient(stack.sim_url) as client:
            routes = Routes(client, stack.endpoint_ids[0], stack.destination_id)
            routes.use(snapshot=True, thin=False)
            sessions = [(scenario, scenario.run(client)) for scenario in SCENARIOS]
            for scenario, snapshot_too in THIN_SCENARIOS:
                routes.use(snapshot=snapshot_too, thin=True)
                sessions.append((scenario, scenario.run(client)))
        echo(f"{len(sessions)} purchases made; waiting for their orders ...")
        ledger = Ledger(connect(url))
        orders = _wait(ledger, sessions)
        cross_sells = _cross_sells(url, stack.settings)
    finally:
        supervisor.stop_all()
    all_ok = _report(sessions, orders, echo)
    echo("")
    for line in cross_sells:
        echo(line)
    return all_ok


def _cross_sells(url: str, settings: Settings) -> list[str]:
    """The cross-sell report of today's purchases (``crossfill report``), from the daily rollups."""
    from fulfillment.catalog import load_catalog
    from fulfillment.report import CrossSellReport, day_of, text_lines

    rollups = CrossSellReport(connect(url), load_catalog(settings.catalog_path))
    rollups.drain()
    return text_lines(rollups.report(since=day_of(time.time())))


def _wait(ledger: Ledger, sessions: list[tuple[Scenario, str]]) -> dict[str, Order | None]:
    deadline = time.monotonic() + WAIT_S
    orders: dict[str, Order | None] = {}
    while time.monotonic() < deadline:
        orders = {sid: ledger.order(sid) for _, sid in sessions}
        if all((found := orders[sid]) is not None and found.status == scenario.status for scenario, sid in sessions):
            break
        time.sleep(0.5)
    return orders


def _report(sessions: list[tuple[Scenario, str]], orders: dict[str, Order | None], echo: Echo) -> bool:
    echo(f"\n{'purchase':<32} {'session':<22} {'items':>5} {'cross-sell':>10}  {'status':<16} check")
    all_ok = True
    for scenario, sid in sessions:
        order = orders[sid]
        status, items = (order.status, order.items) if order is not None else ("missing", ())
        cross = [item for item in items if item.cross_sell]
        ok = (status == scenario.status and len(items) == scenario.items
              and len(cross) == scenario.cross_sells and all(item.product == DEPLOY for item in cross)
              and all(item.status == "done" for item in items))
        all_ok &= ok
        echo(f"{scenario.label:<32} {sid[:20] + '…':<22} {len(items):>5} {len(cross):>10}  "
             f"{status:<16} {'ok' if ok else 'FAILED: expected ' + scenario.status}")
        for item in items[:3] if len(items) <= 3 else items[:2]:
            echo(f"    {item.id:<30} {item.product or '':<26} x{item.quantity} "
                 f"{'cross-sell' if item.cross_sell else '':<10} {item.status}")
        if len(items) > 3:
            echo(f"    ... {len(items) - 2} more, {sum(item.status == 'done' for item in items)} done in all")
    echo("\nall outcomes as expected" if all_ok else "\nSOME OUTCOMES ARE WRONG")
    return all_ok
