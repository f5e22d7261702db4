"""Redis Sentinel failover under load: the master ``kill -9``ed twice, nothing acknowledged is lost.

Given a master, two replicas (what the README asks of production) and three sentinels (redis-server,
the binary crossfill ships), the Stripe simulator, ``crossfill web``, ``crossfill worker`` and
``crossfill beat`` all on ``sentinel://`` URLs, and buyers paying all along: the master is ``kill -9``ed
while fulfillment calls are in flight, the sentinels promote a replica and point the other one at it,
and the old master is started again on its data dir, where the sentinels make it a replica of the new
one when they next look at it. Then the new master is killed the same way.

After each kill every paid item is fulfilled within 60 s, its effect once; the receiver answered
nothing but 200 and 503 (Stripe retries a 503); the same worker process carried on (it found the new
master by itself). An event is acknowledged, and an item done, only once a replica holds it (WAIT):
without that, an event acknowledged in the last instant before a kill would be gone with the master.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crossfill.embedded import free_port
from fulfillment.events import HANDLED_TYPES
from fulfillment.ledger import Ledger
from fulfillment.store import connect
from simulator.client import SimClient
from tests.support.processes import Proc, crossfill, port_open, wait_until
from tests.support.sentinel import SentinelCluster
from tests.support.shop import Buyers, Shop, catalog_toml
from tests.support.stack import process_env
from tests.support.target import FulfillmentTarget

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "whsec_sentinel_tests_secret_0123456789"
HANDLER_SECRET = "crossfill_sentinel_handler_secret"
API_KEY = "sk_test_crossfill_sentinel"
FAILOVERS = 2
BUYERS = 2
PACE_S = 0.3  #: each buyer's pause between purchases
HANDLER_DELAY_S = 0.2  #: each fulfillment call takes this long, so calls are in flight at the kill
LOAD_AFTER_KILL_S = 12.0  #: purchases go on this long after each kill
FULFILLED_WITHIN_S = 60.0  #: every paid item is fulfilled this soon after the kill
#: The old master is back as a replica this soon after the kill. The sentinels' pace, not crossfill's:
#: it gates only the next round (which needs two replicas again), so it is generous.
REJOINED_WITHIN_S = 150.0
#: Short recovery settings, as the other real-process tests use: a lost message comes back in seconds.
ENV = {
    "CROSSFILL_VISIBILITY_TIMEOUT": "10",
    "CROSSFILL_ITEM_LEASE": "5",
    "CROSSFILL_RETRY_BASE": "0.2",
    "CROSSFILL_RETRY_CAP": "1",
    "CROSSFILL_RETRY_HORIZON": "1h",
    "CROSSFILL_WEB_WORKERS": "2",
    "CROSSFILL_RECONCILE_EVERY": "10s",
    "CROSSFILL_RECONCILE_WINDOW": "1h",
    "CROSSFILL_SWEEP_EVERY": "3s",
    "CROSSFILL_STUCK_AFTER": "20s",
}


@dataclass
class HA:
    """The cluster, the stack on it, and what the run saw."""

    tmp: Path
    cluster: SentinelCluster
    target: FulfillmentTarget
    sim: SimClient
    shop: Shop
    procs: dict[str, Proc] = field(default_factory=dict)
    sessions: list[str] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{proc.output()[-3000:]}" for name, proc in self.procs.items()) + \
            "\n" + self.cluster.logs()


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[HA]:
    cluster = SentinelCluster(tmp_path / "cluster", replicas=2).start()
    target = FulfillmentTarget(HANDLER_SECRET)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(catalog_toml(target.url))
    sim_port, web_port = free_port(), free_port()
    env = process_env(ENV, redis_url=cluster.url, data_dir=tmp_path / "data", web_port=web_port, sim_port=sim_port,
                      catalog=catalog, webhook_secret=WEBHOOK_SECRET, handler_secret=HANDLER_SECRET,
                      api_key=API_KEY)
    # The simulator retries a refused delivery after 0.2, 0.4, 0.8 … s, 12 times (Stripe: for 3 days).
    procs = {"sim": crossfill("sim", ["sim", "--port", str(sim_port), "--catalog", str(catalog),
                                      "--retry-base-ms", "200", "--retry-max-attempts", "12"], env, tmp_path)}
    try:
        wait_until(lambda: port_open(sim_port), timeout=30, what="the simulator")
        procs["web"] = crossfill("web", ["web"], env, tmp_path)
        procs["worker"] = crossfill("worker", ["worker", "--concurrency", "8"], env, tmp_path)
        procs["beat"] = crossfill("beat", ["beat"], env, tmp_path)
        wait_until(lambda: port_open(web_port), timeout=30, what="the receiver")
        sim = SimClient(f"http://127.0.0.1:{sim_port}", API_KEY)
        sim.post("/v1/webhook_endpoints", {"url": f"http://127.0.0.1:{web_port}/webhooks/stripe",
                                           "enabled_events": list(HANDLED_TYPES), "secret": WEBHOOK_SECRET})
        yield HA(tmp=tmp_path, cluster=cluster, target=target, sim=sim, shop=Shop(sim), procs=procs)
    finally:
        for proc in reversed(procs.values()):
            proc.stop()
        target.stop()
        cluster.stop()


def wait_for_fulfillments(ha: HA, count: int, what: str) -> None:
    start = len(ha.target.effects)
    wait_until(lambda: len(ha.target.effects) >= start + count, timeout=60, what=what, interval=0.1)


def unfulfilled(ledger: Ledger, sessions: list[str]) -> list[str]:
    """Sessions whose order is not fulfilled yet (read from the current master; none while it is away)."""
    try:
        statuses = ledger.statuses(sessions)
    except Exception:  # noqa: BLE001 - the cluster is between masters: nothing is known to be fulfilled
        return list(sessions)
    return [session for session, status in zip(sessions, statuses, strict=True) if status != "fulfilled"]


def expected_keys(ha: HA) -> set[str]:
    """The idempotency keys of every bought session's line items, as the simulator has them."""
    keys: set[str] = set()
    for session in ha.sessions:
        items = ha.sim.get(f"/v1/checkout/sessions/{session}/line_items", {"limit": 100})["data"]
        keys |= {f"{session}:{item['id']}" for item in items}
    return keys


def delivery_attempts(ha: HA) -> list[dict[str, Any]]:
    """Every delivery attempt of every event, as the simulator recorded it (``status_code`` None: no answer)."""
    attempts: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = ha.sim.get("/v1/events", params)
        for event in page["data"]:
            for delivery in ha.sim.get(f"/sim/events/{event['id']}/deliveries")["data"]:
                attempts += [{"event": event["id"], **attempt} for attempt in delivery["attempts"]]
        if not page["has_more"]:
            return attempts
        params["starting_after"] = page["data"][-1]["id"]


@pytest.mark.timeout(420)  # ~60 s; every wait has its own deadline
def test_two_master_kills_lose_nothing_and_fulfil_everything_within_a_minute(ha: HA) -> None:
    ledger = Ledger(connect(ha.cluster.url))
    worker = ha.procs["worker"]  # one process (``crossfill worker`` runs Celery in itself)
    ha.target.delay_s = HANDLER_DELAY_S
    figures: list[dict[str, float]] = []

    for round_number in range(1, FAILOVERS + 1):
        with Buyers(ha.shop, buyers=BUYERS, pace_s=PACE_S) as load:
            # Given purchases flowing, and fulfillment calls in flight
            wait_for_fulfillments(ha, 5, f"items fulfilled before kill {round_number}")
            ha.target.entered.clear()
            wait_until(ha.target.entered.is_set, timeout=30, what="a fulfillment call in flight")

            # When the master is killed, the sentinels promote a replica and point the other at it,
            # and the old master is started again
            killed_at = time.monotonic()
            old = ha.cluster.kill_master()
            new = ha.cluster.wait_failover(old)
            promoted_s = time.monotonic() - killed_at
            ha.cluster.wait_replicated(new, 1, timeout=FULFILLED_WITHIN_S)
            replicated_s = time.monotonic() - killed_at
            ha.cluster.restart(old)
            time.sleep(max(0.0, killed_at + LOAD_AFTER_KILL_S - time.monotonic()))
        assert not load.errors, load.errors[:3]
        ha.sessions += load.sessions

        # Then every order bought so far is fulfilled within a minute of the kill
        sessions = list(ha.sessions)
        try:
            wait_until(lambda: not unfulfilled(ledger, sessions),
                       timeout=max(1.0, killed_at + FULFILLED_WITHIN_S - time.monotonic()),
                       what=f"every order fulfilled within {FULFILLED_WITHIN_S:g} s of kill {round_number}",
                       interval=0.2)
        except AssertionError as error:
            left = unfulfilled(ledger, sessions)
            raise AssertionError(f"{error}: {len(left)} of {len(sessions)} orders left, e.g. "
                                 f"{json.dumps(ledger.orders(left[:2]), default=str)[:1500]}\n{ha.logs()}") from None
        fulfilled_s = time.monotonic() - killed_at

        # And the old master rejoins as a replica, so that the next kill leaves one too
        ha.cluster.wait_whole(timeout=max(1.0, killed_at + REJOINED_WITHIN_S - time.monotonic()))
        figures.append({"round": round_number, "promoted_s": round(promoted_s, 1),
                        "replicated_s": round(replicated_s, 1), "fulfilled_s": round(fulfilled_s, 1),
                        "rejoined_s": round(time.monotonic() - killed_at, 1), "orders": len(sessions)})

    # And each paid item was fulfilled once in effect, nothing else was called
    expected = expected_keys(ha)
    assert set(ha.target.effects) == expected
    assert set(ha.target.calls) == expected
    assert ha.target.bad_signatures == 0
    # And no order ended otherwise, nothing is dead-lettered
    assert not unfulfilled(ledger, ha.sessions)
    assert ledger.counts()["partially_failed"] == 0
    # And the receiver never answered a 5xx other than 503 (Stripe retries those)
    attempts = delivery_attempts(ha)
    statuses = Counter(attempt["status_code"] for attempt in attempts)
    odd = [attempt for attempt in attempts if attempt["status_code"] not in (200, 503)]
    assert not odd, f"{statuses}: {json.dumps(odd[:5], default=str)}\n{ha.logs()}"
    # And the same worker process carried on through both failovers (it followed the master by itself)
    assert worker.alive(), ha.logs()
    log = worker.log_path.read_text(errors="replace")
    assert "Unrecoverable error" not in log
    assert log.count("Connection to broker lost") >= FAILOVERS, worker.output()  # it saw both kills
    calls = sum(ha.target.calls.values())
    print(json.dumps({"failovers": figures, "items": len(expected), "handler_calls": calls,
                      "repeated_calls": calls - len(expected), "answers": dict(statuses),
                      "slowest_answer_ms": max(attempt["duration_ms"] for attempt in attempts)}))
