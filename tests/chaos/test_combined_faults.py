"""Every fault at once, on real processes, and then every order checked.

Given the whole stack — redis-server with its append-only file, the simulator, the receiver under
gunicorn, two worker processes under ``crossfill worker -p 2``, ``crossfill beat`` (reconcile and
sweep) and a fulfillment system that dedupes on ``Idempotency-Key`` — when 300 buyers pay, add and
remove the cross-sell, pay asynchronously (succeeding or failing) or let the session expire, while

* the Stripe API fails 20 % of session reads with 500 and rate-limits them (429) past 15/s,
* the fulfillment system fails 20 % of calls with 500 and 5 % with 429,
* 10 % of webhook deliveries are silently lost (never retried),
* worker processes are ``kill -9``ed three times and Redis once (then restarted on its data dir),
* every event is delivered again afterwards, and hostile requests hit the receiver throughout,

then every paid item is fulfilled exactly once in effect, nothing of an unpaid session is, no
dead letter is left, every worker is alive, and the receiver never answered a 5xx other than 503.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from crossfill.embedded import free_port
from fulfillment.deadletters import DeadLetters
from fulfillment.events import HANDLED_TYPES
from fulfillment.ledger import Ledger
from fulfillment.signing import sign
from simulator.client import SimClient
from tests.support.processes import ROOT, Proc, RedisServer, crossfill, port_open, wait_until
from tests.support.shop import DEPLOY, PRO, Shop, catalog_toml
from tests.support.target import FulfillmentTarget

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SEED = 20261130
PURCHASES = 300
BUYERS = 6
PACE_S = 0.5  #: each buyer's pause between purchases: 12 purchases/s in all, so the faults strike under load
WEBHOOK_SECRET = "whsec_chaos_tests_secret_0123456789abcdef"
HANDLER_SECRET = "crossfill_chaos_handler_secret"
API_KEY = "sk_test_crossfill_chaos"
PAID = ("paid", "no_payment_required")
#: The stack's settings: short timeouts so that recovery takes seconds, not the production minutes.
STACK_ENV = {
    "CROSSFILL_VISIBILITY_TIMEOUT": "10",
    "CROSSFILL_ITEM_LEASE": "5",
    "CROSSFILL_RETRY_BASE": "0.2",
    "CROSSFILL_RETRY_CAP": "2",
    "CROSSFILL_RETRY_HORIZON": "1h",
    "CROSSFILL_WEB_WORKERS": "2",
    "CROSSFILL_RECONCILE_EVERY": "10s",
    "CROSSFILL_RECONCILE_WINDOW": "1h",
    "CROSSFILL_SWEEP_EVERY": "5s",
    "CROSSFILL_STUCK_AFTER": "30s",
    # Above the simulator's 15/s: the shared limiter lets bursts through, so 429s and their cool-downs happen.
    "CROSSFILL_STRIPE_RATE_LIMIT": "60",
    "CROSSFILL_STRIPE_ENDPOINT_RATE_LIMIT": "60",
}
CONVERGE_TIMEOUT_S = 240.0


class FlakySink(FulfillmentTarget):
    """The fulfillment system: fails 20 % of calls with 500 and 5 % with 429, dedupes on Idempotency-Key."""

    def __init__(self, secret: str, seed: int) -> None:
        super().__init__(secret)
        self._rng = random.Random(seed)
        self.failures: Counter[int] = Counter()

    def record(self, key: str, body: bytes, signature: str) -> int:
        with self._lock:
            draw = self._rng.random()
        status = 500 if draw < 0.20 else 429 if draw < 0.25 else 0
        if status:
            with self._lock:
                self.calls[key] += 1
                self.failures[status] += 1
            return status
        return super().record(key, body, signature)


@dataclass
class Purchase:
    session_id: str
    kind: str


@dataclass
class Chaos:
    tmp: Path
    redis: RedisServer
    sink: FlakySink
    sim: SimClient
    env: dict[str, str]
    receiver_url: str
    procs: dict[str, Proc] = field(default_factory=dict)
    purchases: list[Purchase] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{proc.output()[-3000:]}" for name, proc in self.procs.items())


def worker_children(parent: Proc) -> list[int]:
    """The worker processes ``crossfill worker -p N`` supervises (its direct children)."""
    path = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[Chaos]:
    redis = RedisServer(tmp_path / "redis")
    sink = FlakySink(HANDLER_SECRET, SEED)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(catalog_toml(sink.url))
    sim_port, web_port = free_port(), free_port()
    env = {
        **os.environ, **STACK_ENV,
        "CROSSFILL_REDIS_URL": redis.url,
        "CROSSFILL_DATA_DIR": str(tmp_path / "data"),
        "CROSSFILL_PORT": str(web_port),
        "CROSSFILL_CATALOG": str(catalog),
        "CROSSFILL_HANDLER_SECRET": HANDLER_SECRET,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": f"http://127.0.0.1:{sim_port}",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    procs = {"sim": crossfill("sim", ["sim", "--port", str(sim_port), "--catalog", str(catalog),
                                      "--retry-base-ms", "300"], env, tmp_path)}
    try:
        wait_until(lambda: port_open(sim_port), timeout=30, what="the simulator")
        procs["web"] = crossfill("web", ["web"], env, tmp_path)
        procs["worker"] = crossfill("worker", ["worker", "--concurrency", "16", "--processes", "2"], env, tmp_path)
        procs["beat"] = crossfill("beat", ["beat"], env, tmp_path)
        wait_until(lambda: port_open(web_port), timeout=30, what="the receiver")
        sim = SimClient(f"http://127.0.0.1:{sim_port}", API_KEY)
        receiver_url = f"http://127.0.0.1:{web_port}/webhooks/stripe"
        sim.post("/v1/webhook_endpoints", {"url": receiver_url, "enabled_events": list(HANDLED_TYPES),
                                           "secret": WEBHOOK_SECRET})
        yield Chaos(tmp=tmp_path, redis=redis, sink=sink, sim=sim, env=env, receiver_url=receiver_url,
                    procs=procs)
    finally:
        for proc in reversed(procs.values()):
            proc.stop()
        sink.stop()
        redis.stop()


# --- the buyers ------------------------------------------------------------------------------------

KINDS = ("paid", "paid", "paid", "paid", "cross_sell", "cross_sell", "cross_sell_removed",
         "async_succeeded", "async_failed", "expired")


def buy(shop: Shop, sim: SimClient, kind: str, extra_items: int) -> str:
    """One buyer's session, driven to the outcome *kind*; returns its id."""
    session = shop.open_session(extra_items=extra_items)
    sid = str(session["id"])
    if kind in ("cross_sell", "cross_sell_removed"):
        sim.post(f"/sim/checkout/sessions/{sid}/cross_sell")
    if kind == "cross_sell_removed":
        sim.delete(f"/sim/checkout/sessions/{sid}/cross_sell")
    if kind == "expired":
        sim.post(f"/sim/checkout/sessions/{sid}/expire")
    else:
        outcome = kind if kind.startswith("async") else "paid"
        sim.post(f"/sim/checkout/sessions/{sid}/complete", {"outcome": outcome, "email": "jane.doe@example.com"})
    return sid


def run_buyers(chaos: Chaos, shop: Shop) -> tuple[list[threading.Thread], threading.Event]:
    plan = random.Random(SEED)
    orders = [(plan.choice(KINDS), plan.randrange(4)) for _ in range(PURCHASES)]  # 1-4 items
    lock = threading.Lock()

    def buyer(number: int) -> None:
        for index in range(number, PURCHASES, BUYERS):
            kind, extra = orders[index]
            time.sleep(PACE_S)
            try:
                sid = buy(shop, chaos.sim, kind, extra)
                with lock:
                    chaos.purchases.append(Purchase(sid, kind))
            except Exception as error:  # noqa: BLE001 - reported by the test
                with lock:
                    chaos.errors.append(f"buyer {number}: {error!r}")

    threads = [threading.Thread(target=buyer, args=(n,), daemon=True) for n in range(BUYERS)]
    for thread in threads:
        thread.start()
    return threads, threading.Event()


# --- hostile traffic -------------------------------------------------------------------------------

def hostile(chaos: Chaos, stop: threading.Event, answers: Counter[int]) -> None:
    """Bad signatures, garbage, stale timestamps and lone surrogates, until told to stop."""
    rng = random.Random(SEED + 1)
    session = requests.Session()
    while not stop.is_set():
        body = rng.choice([b"{", b"null", rng.randbytes(64), b'{"id":"evt_\\udfff","object":"event"}',
                           json.dumps({"id": f"evt_h{rng.randrange(10**9)}", "object": "event",
                                       "type": "checkout.session.completed"}).encode()])
        header = rng.choice(["", "t=1,v1=00", sign(body, [WEBHOOK_SECRET], timestamp=int(time.time())),
                             sign(body, [WEBHOOK_SECRET], timestamp=int(time.time()) - 3600), "garbage"])
        try:
            status = session.post(chaos.receiver_url, data=body, headers={"Stripe-Signature": header},
                                  timeout=10).status_code
        except requests.RequestException:
            status = -1
        answers[status] += 1
        stop.wait(0.02)


# --- the test --------------------------------------------------------------------------------------

@pytest.mark.timeout(600)
def test_every_order_survives_every_fault_at_once(chaos: Chaos) -> None:
    sim = chaos.sim
    shop = Shop(sim)
    shop.open_session(extra_items=3)  # creates every product and price once (Shop is not thread-safe)
    # Faults on the worker's reads of sessions and line items, batched (the list) or alone (buyers create
    # sessions unharmed: POST).
    sim.delete("/sim/stats")
    sim.post("/sim/faults", {"error_rate": 0.2, "rate_limit_per_s": 15, "webhook_drop_rate": 0.1,
                             "path_prefix": "/v1/checkout/sessions", "method": "GET", "seed": SEED})
    hostile_answers: Counter[int] = Counter()
    stop_hostile = threading.Event()
    attacker = threading.Thread(target=hostile, args=(chaos, stop_hostile, hostile_answers), daemon=True)
    attacker.start()

    # When the buyers pay while workers and Redis are killed
    buyers, _ = run_buyers(chaos, shop)
    worker = chaos.procs["worker"]
    kills: list[str] = []
    for fraction, victim in ((0.2, "worker"), (0.45, "worker"), (0.55, "redis"), (0.7, "worker")):
        wait_until(lambda: len(chaos.purchases) >= PURCHASES * fraction or not any(t.is_alive() for t in buyers),
                   timeout=300, what=f"{fraction:.0%} of the purchases")
        if victim == "redis":
            chaos.redis.proc.kill9()
            time.sleep(2)
            chaos.redis.restart()
            kills.append("redis")
        else:
            wait_until(lambda: len(worker_children(worker)) == 2, timeout=60, what="two worker processes")
            pid = random.Random(SEED + len(kills)).choice(worker_children(worker))
            os.kill(pid, signal.SIGKILL)
            kills.append(f"worker {pid}")
    for thread in buyers:
        thread.join(300)
    assert not chaos.errors, chaos.errors[:5]
    assert len(chaos.purchases) == PURCHASES

    # And every event is delivered once more (Stripe's duplicates), some of them lost again
    events = list_events(sim)
    for event in events:
        sim.post(f"/sim/events/{event['id']}/resend")
    faults_over = time.monotonic()

    # Then every paid item is fulfilled once in effect, and nothing else
    sim.delete("/sim/faults")  # the test reads the truth from the simulator unharmed
    expected, unpaid = expected_items(sim, chaos.purchases)
    ledger = Ledger(chaos.redis.client())

    def settled() -> bool:
        return expected <= set(chaos.sink.effects) and all(
            (ledger.order(p.session_id) or {}).get("status") == "fulfilled"
            for p in chaos.purchases if p.session_id not in unpaid)

    try:
        wait_until(settled, timeout=CONVERGE_TIMEOUT_S, what="every paid item fulfilled", interval=1.0)
    except AssertionError:
        missing = sorted(expected - set(chaos.sink.effects))
        raise AssertionError(f"{len(missing)} paid item(s) never fulfilled, e.g. {missing[:5]}; kills {kills}\n"
                             f"{chaos.logs()}") from None
    recovery_s = time.monotonic() - faults_over
    stop_hostile.set()
    attacker.join(30)

    assert set(chaos.sink.effects) == expected, "an item of an unpaid session was fulfilled"
    assert all(chaos.sink.effects[key]["idempotency_key"] == key for key in expected)
    for sid in unpaid:
        assert (ledger.order(sid) or {}).get("status") in (None, "awaiting_payment", "payment_failed", "expired")
    assert DeadLetters(chaos.redis.client()).count() == 0

    # And every worker is alive: the two processes under `crossfill worker -p 2` answer a ping
    assert worker.alive(), chaos.logs()
    wait_until(lambda: len(worker_children(worker)) == 2, timeout=60, what="two worker processes")
    # (a worker restarted late may take a moment before it answers Celery's ping)
    wait_until(lambda: len(json.loads(run_cli(chaos, "status", "--json").stdout)["workers"]) == 2, timeout=60,
               what="both worker processes answering a ping", interval=2.0)

    # And the receiver never answered a 5xx other than 503, to Stripe or to the attacker
    assert not [code for code in hostile_answers if code >= 500 and code != 503], hostile_answers
    statuses = delivery_statuses(sim, events)
    assert not [code for code in statuses if code is not None and code >= 500 and code != 503], statuses

    # And the faults did happen: the API answered 429s and 500s, the fulfillment system too
    api = sim.get("/sim/stats")
    assert api["rate_limited"] > 0 and chaos.sink.failures[500] > 0 and chaos.sink.failures[429] > 0

    calls = sum(chaos.sink.calls.values())
    print(f"\ncombined faults: {PURCHASES} purchases, {len(expected)} paid items fulfilled once "
          f"({calls} calls, sink failures {dict(chaos.sink.failures)}), {len(unpaid)} unpaid sessions untouched; "
          f"API {api['requests']} requests, {api['rate_limited']} answered 429; "
          f"kills {kills}; {len(events)} events resent; hostile {dict(hostile_answers)}; "
          f"deliveries {dict(statuses)}; recovered {recovery_s:.1f} s after the last fault")


def run_cli(chaos: Chaos, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crossfill.cli", *args], env=chaos.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)


def list_events(sim: SimClient) -> list[dict[str, Any]]:
    """Every event of the simulator, oldest first, page by page."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = sim.get("/v1/events", params)
        events += page["data"]
        if not page["has_more"]:
            return list(reversed(events))
        params["starting_after"] = page["data"][-1]["id"]


def expected_items(sim: SimClient, purchases: list[Purchase]) -> tuple[set[str], set[str]]:
    """The idempotency keys of every paid session's current line items, and the unpaid sessions."""
    expected: set[str] = set()
    unpaid: set[str] = set()
    for purchase in purchases:
        session = sim.get(f"/v1/checkout/sessions/{purchase.session_id}")
        if session["payment_status"] not in PAID:
            unpaid.add(purchase.session_id)
            continue
        items = sim.get(f"/v1/checkout/sessions/{purchase.session_id}/line_items", {"limit": 100})["data"]
        expected |= {f"{purchase.session_id}:{item['id']}" for item in items}
        products = {item["price"]["product"] for item in items}
        assert PRO in products
        assert (DEPLOY in products) == (purchase.kind == "cross_sell"), purchase
    return expected, unpaid


def delivery_statuses(sim: SimClient, events: list[dict[str, Any]]) -> Counter[int | None]:
    """How the receiver answered every delivery attempt of every event (None: no answer)."""
    statuses: Counter[int | None] = Counter()
    for event in events:
        for delivery in sim.get(f"/sim/events/{event['id']}/deliveries")["data"]:
            for attempt in delivery["attempts"]:
                statuses[attempt["status_code"]] += 1
    return statuses
