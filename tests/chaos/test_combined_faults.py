"""Every fault at once, on real processes and on the default timings, and then every order checked.

Given the whole stack — redis-server with its append-only file, the simulator, the receiver under
gunicorn, two ``crossfill worker`` processes, ``crossfill beat`` (reconcile and sweep) and a
fulfillment system that dedupes on ``Idempotency-Key`` — with the visibility timeout, the item lease,
the stuck threshold and the sweep and reconcile intervals all at their defaults, when 300 buyers pay,
add and remove the cross-sell, pay asynchronously (succeeding or failing) or let the session expire,
while

* the Stripe API fails 20 % of session reads with 500 and rate-limits them (429) past 3/s,
* the fulfillment system fails 20 % of calls with 500 and 5 % with 429,
* 10 % of webhook deliveries are silently lost (never retried),
* one worker is ``kill -9``ed (its process group) and restarted 2 s later, Redis is ``kill -9``ed and
  restarted on its data dir, and the other worker is ``kill -9``ed for good,
* every event is delivered again afterwards, and hostile requests hit the receiver throughout,

then every paid item is fulfilled exactly once in effect, nothing of an unpaid session is, no
dead letter is left, the live worker answers, and the receiver never answered a 5xx other than 503;
and recovery was bounded: every item a killed worker held had its effect within 120 s of the kill
(restarted or not), and every paid order in flight when Redis came back was fulfilled within 60 s.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from crossfill.embedded import free_port
from fulfillment.deadletters import DeadLetters
from fulfillment.events import HANDLED_TYPES
from fulfillment.ledger import Ledger
from fulfillment.signing import sign
from messaging.contract import FULFILL_ITEM, PROCESS_EVENT
from simulator.client import SimClient
from tests.support.processes import ROOT, Proc, RedisServer, crossfill, port_open, wait_until
from tests.support.shop import DEPLOY, PRO, Shop, catalog_toml
from tests.support.stack import process_env
from tests.support.target import FulfillmentTarget
from worker.redelivery import OWNERS, held_by
from worker.sweeper import task_of

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SEED = 20261130
PURCHASES = 300
BUYERS = 6
PACE_S = 0.5  #: each buyer's pause between purchases: 12 purchases/s in all, so the faults strike under load
WEBHOOK_SECRET = "whsec_chaos_tests_secret_0123456789abcdef"
HANDLER_SECRET = "crossfill_chaos_handler_secret"
API_KEY = "sk_test_crossfill_chaos"
PAID = ("paid", "no_payment_required")
#: The stack's settings. Every recovery timing is left at its default (visibility timeout, item lease,
#: stuck threshold, sweep and reconcile intervals): the bounds below are the defaults' bounds. The retry
#: backoff is shortened (the faults above make a quarter of all calls fail, and with the default
#: backoff's 1 s base the tail of those retries, not recovery, would set the test's length).
STACK_ENV = {
    "CROSSFILL_RETRY_BASE": "0.2",
    "CROSSFILL_RETRY_CAP": "2",
    "CROSSFILL_RETRY_HORIZON": "1h",
    "CROSSFILL_WEB_WORKERS": "2",
    "CROSSFILL_RECONCILE_WINDOW": "1h",
    # Above the simulator's SESSION_READS_PER_S: the shared limiter lets bursts through, so 429s happen.
    "CROSSFILL_STRIPE_RATE_LIMIT": "60",
    "CROSSFILL_STRIPE_ENDPOINT_RATE_LIMIT": "60",
}
WORKER_KILL_BOUND_S = 120.0  #: every item a killed worker held has its effect this soon after the kill
REDIS_RESTART_BOUND_S = 60.0  #: every paid order in flight when Redis came back is fulfilled this soon after
CONVERGE_TIMEOUT_S = 240.0
#: The simulator rate-limits session reads past this (429). Batched reads take ~0.15 calls per order, so
#: at 12 purchases/s only a limit this low makes the 429s (and the limiter's cool-downs) certain to happen.
SESSION_READS_PER_S = 3


class FlakySink(FulfillmentTarget):
    """The fulfillment system: fails 20 % of calls with 500 and 5 % with 429, dedupes on Idempotency-Key,
    and notes when each effect happened."""

    def __init__(self, secret: str, seed: int) -> None:
        super().__init__(secret)
        self._rng = random.Random(seed)
        self.failures: Counter[int] = Counter()
        self.effect_at: dict[str, float] = {}

    def record(self, key: str, body: bytes, signature: str) -> int:
        with self._lock:
            draw = self._rng.random()
        status = 500 if draw < 0.20 else 429 if draw < 0.25 else 0
        if status:
            with self._lock:
                self.calls[key] += 1
                self.failures[status] += 1
            return status
        answer = super().record(key, body, signature)
        with self._lock:
            if key in self.effects:
                self.effect_at.setdefault(key, time.time())
        return answer


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

    def purchase_kind(self, session_id: str) -> str:
        return next((p.kind for p in self.purchases if p.session_id == session_id), "")

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{proc.output()[-3000:]}" for name, proc in self.procs.items())


@dataclass
class Kill:
    """A fault and what it left to recover: a worker's held messages, or Redis's orders in flight."""

    what: str
    at: float  #: unix time of the kill (a worker's) or of the restart (Redis's)
    items: set[str] = field(default_factory=set)  #: "session:item" keys it held (worker)
    events: set[str] = field(default_factory=set)  #: event ids it held (worker) or in flight (Redis)
    sessions: set[str] = field(default_factory=set)  #: orders fulfilling at the restart (Redis)
    due: dict[str, float] = field(default_factory=dict)  #: key → countdown retry's time, when later than the kill


def held_at_kill(client: Any, pid: int, at: float) -> Kill:
    """What the worker process *pid* held unacked when it was killed (its connections' owner hashes)."""
    kill = Kill(f"worker {pid}", at)
    for owner in client.zrange(OWNERS, 0, -1):
        if owner.split(":")[1] != str(pid):
            continue
        for message in held_by(client, owner).values():
            payload = json.loads(message)
            task = task_of(payload)
            if task is None:
                continue
            name, *args = task
            if name == FULFILL_ITEM:
                key = ":".join(args[:2])
                kill.items.add(key)
                eta = payload["headers"].get("eta")
                if eta:
                    kill.due[key] = datetime.fromisoformat(eta).timestamp()
            elif name == PROCESS_EVENT:
                kill.events.add(args[0])
    return kill


def in_flight_at_restart(client: Any, at: float) -> Kill:
    """What Redis came back with unfinished: orders fulfilling and events not yet processed."""
    kill = Kill("redis", at)
    kill.sessions = set(client.smembers("crossfill:orders:fulfilling"))
    for status in ("enqueued", "processing"):
        kill.events |= set(client.zrange(f"crossfill:inbox:{status}", 0, -1))
    return kill


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[Chaos]:
    redis = RedisServer(tmp_path / "redis")
    sink = FlakySink(HANDLER_SECRET, SEED)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(catalog_toml(sink.url))
    sim_port, web_port = free_port(), free_port()
    env = process_env(STACK_ENV, redis_url=redis.url, data_dir=tmp_path / "data", web_port=web_port,
                      sim_port=sim_port, catalog=catalog, webhook_secret=WEBHOOK_SECRET,
                      handler_secret=HANDLER_SECRET, api_key=API_KEY)
    procs = {"sim": crossfill("sim", ["sim", "--port", str(sim_port), "--catalog", str(catalog),
                                      "--retry-base-ms", "300"], env, tmp_path)}
    try:
        wait_until(lambda: port_open(sim_port), timeout=30, what="the simulator")
        procs["web"] = crossfill("web", ["web"], env, tmp_path)
        procs["worker-a"] = crossfill("worker-a", ["worker", "--concurrency", "8"], env, tmp_path)
        procs["worker-b"] = crossfill("worker-b", ["worker", "--concurrency", "8"], env, tmp_path)
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

ASYNC_KINDS = ("async_succeeded", "async_failed")
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
    sim.post("/sim/faults", {"error_rate": 0.2, "rate_limit_per_s": SESSION_READS_PER_S, "webhook_drop_rate": 0.1,
                             "path_prefix": "/v1/checkout/sessions", "method": "GET", "seed": SEED})
    hostile_answers: Counter[int] = Counter()
    stop_hostile = threading.Event()
    attacker = threading.Thread(target=hostile, args=(chaos, stop_hostile, hostile_answers), daemon=True)
    attacker.start()

    # When the buyers pay while a worker is killed and restarted, Redis is killed, another worker is killed for good
    buyers, _ = run_buyers(chaos, shop)
    client = chaos.redis.client()
    kills: list[Kill] = []
    for fraction, victim in ((0.2, "worker-a"), (0.45, "redis"), (0.7, "worker-b")):
        wait_until(lambda: len(chaos.purchases) >= PURCHASES * fraction or not any(t.is_alive() for t in buyers),
                   timeout=300, what=f"{fraction:.0%} of the purchases")
        if victim == "redis":
            chaos.redis.proc.kill9()
            time.sleep(2)
            chaos.redis.restart()
            kills.append(in_flight_at_restart(client, time.time()))
            continue
        worker = chaos.procs[victim]
        worker.kill9()  # its whole process group, while it fulfils
        kills.append(held_at_kill(client, worker.pid, time.time()))
        if victim == "worker-a":
            time.sleep(2)
            chaos.procs[victim] = crossfill(victim, ["worker", "--concurrency", "8"], chaos.env, chaos.tmp)
    for thread in buyers:
        thread.join(300)
    assert not chaos.errors, chaos.errors[:5]
    assert len(chaos.purchases) == PURCHASES

    # And every event is delivered once more (Stripe's duplicates and retries: the lost ones get through;
    # a webhook lost for good waits for reconciliation, every CROSSFILL_RECONCILE_EVERY: 10 min by default)
    sim.post("/sim/faults", {"error_rate": 0.2, "rate_limit_per_s": SESSION_READS_PER_S, "path_prefix": "/v1/checkout/sessions/",
                             "seed": SEED + 2})
    events = list_events(sim)
    for event in events:
        sim.post(f"/sim/events/{event['id']}/resend")
    sim.delete("/sim/faults")  # the test reads the truth from the simulator unharmed
    faults_over = time.monotonic()

    # Then every paid item is fulfilled once in effect, and nothing else
    expected, unpaid = expected_items(sim, chaos.purchases)
    ledger = Ledger(client)

    def settled() -> bool:
        return expected <= set(chaos.sink.effects) and all(
            (ledger.order(p.session_id) or {}).get("status") == "fulfilled"
            for p in chaos.purchases if p.session_id not in unpaid)

    try:
        wait_until(settled, timeout=CONVERGE_TIMEOUT_S, what="every paid item fulfilled", interval=1.0)
    except AssertionError:
        missing = sorted(expected - set(chaos.sink.effects))
        raise AssertionError(f"{len(missing)} paid item(s) never fulfilled, e.g. {missing[:5]}; kills "
                             f"{[kill.what for kill in kills]}\n{chaos.logs()}") from None
    recovery_s = time.monotonic() - faults_over
    stop_hostile.set()
    attacker.join(30)

    assert set(chaos.sink.effects) == expected, "an item of an unpaid session was fulfilled"
    assert all(chaos.sink.effects[key]["idempotency_key"] == key for key in expected)
    for sid in unpaid:
        assert (ledger.order(sid) or {}).get("status") in (None, "awaiting_payment", "payment_failed", "expired")
    assert DeadLetters(client).count() == 0

    # And recovery was bounded on the default timings
    figures = [recovery_bound(kill, chaos, ledger, expected) for kill in kills]
    print("\nrecovery: " + "; ".join(f"{what}: {count} item(s), last effect {late:.1f} s after"
                                     for what, count, late in figures))
    for (what, count, late), kill in zip(figures, kills, strict=True):
        bound = REDIS_RESTART_BOUND_S if kill.what == "redis" else WORKER_KILL_BOUND_S
        assert late <= bound, f"{what}: the last of {count} item(s) took {late:.1f} s (bound {bound:.0f} s)"
    assert any(count for what, count, _ in figures if what.startswith("worker")), "no kill caught work in flight"

    # And the live workers answer: the one restarted after its kill (the other stays dead on purpose)
    assert chaos.procs["worker-a"].alive(), chaos.logs()
    wait_until(lambda: len(json.loads(run_cli(chaos, "status", "--json").stdout)["workers"]) == 1, timeout=60,
               what="the restarted worker answering a ping", interval=2.0)

    # And the receiver never answered a 5xx other than 503, to Stripe or to the attacker
    assert not [code for code in hostile_answers if code >= 500 and code != 503], hostile_answers
    statuses = delivery_statuses(sim, events)
    assert not [code for code in statuses if code is not None and code >= 500 and code != 503], statuses

    # And the faults did happen: the API answered 429s and 500s, the fulfillment system too
    api = sim.get("/sim/stats")
    assert api["rate_limited"] > 0 and chaos.sink.failures[500] > 0 and chaos.sink.failures[429] > 0

    calls = sum(chaos.sink.calls.values())
    print(f"combined faults: {PURCHASES} purchases, {len(expected)} paid items fulfilled once "
          f"({calls} calls, sink failures {dict(chaos.sink.failures)}), {len(unpaid)} unpaid sessions untouched; "
          f"API {api['requests']} requests, {api['rate_limited']} answered 429; "
          f"{len(events)} events resent; hostile {dict(hostile_answers)}; "
          f"deliveries {dict(statuses)}; recovered {recovery_s:.1f} s after the last fault")


def recovery_bound(kill: Kill, chaos: Chaos, ledger: Ledger, expected: set[str]) -> tuple[str, int, float]:
    """How late the work a fault left behind was: (what, paid items, seconds from the fault to the last
    effect — for a countdown retry the killed worker held, from the kill or its due time, if later)."""
    client = chaos.redis.client()
    keys = set(kill.items)
    sessions = set(kill.sessions)
    for event_id in kill.events:
        session_id = client.hget(f"crossfill:event:{event_id}", "session_id")
        if session_id:
            sessions.add(session_id)
    for session_id in sessions:
        keys |= {f"{session_id}:{item['id']}" for item in (ledger.order(session_id) or {}).get("items", [])}
    keys &= expected  # paid items only: an unpaid session's event leaves nothing to fulfil
    if kill.what == "redis":
        # What was fulfilling, or paid with its event in flight, when Redis came back (an async payment's
        # first event leaves the order waiting for the money: not late)
        keys = {key for key in keys if chaos.purchase_kind(key.split(":")[0]) not in ASYNC_KINDS
                or key.split(":")[0] in kill.sessions}
    late = [chaos.sink.effect_at[key] - max(kill.at, kill.due.get(key, 0.0)) for key in keys]
    return kill.what, len(keys), max(late, default=0.0)


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
