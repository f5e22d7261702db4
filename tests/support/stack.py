"""The stack the pipeline tests run (Redis, the simulator, the receiver, workers, a fulfillment target),
and its fixtures ``stack`` (one per module) and ``fresh`` (emptied per test): a plugin of tests/conftest.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from crossfill.embedded import free_port
from fulfillment.events import HANDLED_TYPES, THIN_HANDLED_TYPES
from fulfillment.ledger import Ledger
from simulator.client import SimClient
from tests.support.processes import ROOT, Proc, RedisServer, crossfill, port_open, wait_until
from tests.support.shop import Shop, catalog_toml
from tests.support.target import FulfillmentTarget

WEBHOOK_SECRET = "whsec_pipeline_tests_secret_0123456789"
HANDLER_SECRET = "crossfill_handler_test_secret"

#: Settings for the stack: a short visibility timeout and lease so crash recovery takes seconds.
STACK_ENV = {
    "CROSSFILL_VISIBILITY_TIMEOUT": "10",
    "CROSSFILL_ITEM_LEASE": "4",
    "CROSSFILL_RETRY_BASE": "0.2",
    "CROSSFILL_RETRY_CAP": "1",
    "CROSSFILL_MAX_ATTEMPTS": "6",
    "CROSSFILL_WEB_WORKERS": "2",
}


def process_env(settings: dict[str, str], *, redis_url: str, data_dir: Path, web_port: int, sim_port: int,
                catalog: Path, webhook_secret: str, handler_secret: str, api_key: str) -> dict[str, str]:
    """The environment of a test stack's crossfill processes: this process's, then *settings*, then
    where everything is (Redis, the data dir, ports, catalog, secrets, the simulator as Stripe's API)."""
    env = {
        **os.environ,
        **settings,
        "CROSSFILL_REDIS_URL": redis_url,
        "CROSSFILL_DATA_DIR": str(data_dir),
        "CROSSFILL_PORT": str(web_port),
        # Each stack's receiver serves its metrics on a port of its own (two stacks may run at once).
        "CROSSFILL_METRICS_PORT": str(free_port()),
        "CROSSFILL_CATALOG": str(catalog),
        "CROSSFILL_HANDLER_SECRET": handler_secret,
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_API_KEY": api_key,
        "STRIPE_API_BASE": f"http://127.0.0.1:{sim_port}",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each process counts its own metrics
    return env


@dataclass
class Stack:
    """Handles on every running part, and the helpers tests use."""

    tmp: Path
    redis: RedisServer
    target: FulfillmentTarget
    env: dict[str, str]
    sim: SimClient
    shop: Shop
    receiver_url: str
    procs: dict[str, Proc] = field(default_factory=dict)
    #: GET /metrics, served inside on CROSSFILL_METRICS_PORT (the receiver's public port answers 404).
    metrics_url: str = ""
    endpoint_id: str | None = None  #: the simulator's webhook endpoint (snapshot events), if registered
    destination_id: str | None = None  #: its thin event destination, if registered
    destination_secret: str = ""

    def metrics(self) -> str:
        """The text of one scrape of the internal metrics endpoint."""
        response = requests.get(self.metrics_url, timeout=10)
        response.raise_for_status()
        return response.text

    def routes(self, *, snapshot: bool, thin: bool) -> None:
        """Switch the webhook endpoint and the thin destination on or off (after deliveries under way end)."""
        self.sim.post("/sim/deliveries/wait", {"timeout_s": "20"})
        if self.endpoint_id:
            self.sim.post(f"/v1/webhook_endpoints/{self.endpoint_id}", {"disabled": "false" if snapshot else "true"})
        if self.destination_id:
            self.sim.post(f"/v2/core/event_destinations/{self.destination_id}/{'enable' if thin else 'disable'}")

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.redis.client())

    def start_worker(self, name: str = "worker", concurrency: int = 8) -> Proc:
        proc = crossfill(name, ["worker", "--concurrency", str(concurrency)], self.env, self.tmp)
        self.procs[name] = proc
        return proc

    def order(self, session_id: str) -> dict[str, Any] | None:
        """The order as ``crossfill order --json`` shows it (None when unknown)."""
        found = self.ledger.order(session_id)
        return found.to_dict() if found is not None else None

    def wait_order(self, session_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        """Wait until the order reaches *status*; fail with the processes' logs otherwise."""
        try:
            wait_until(lambda: (self.order(session_id) or {}).get("status") == status, timeout=timeout,
                       what=f"order {session_id} to become {status}", interval=0.1)
        except AssertionError as error:
            logs = "\n".join(f"--- {name}\n{proc.output()}" for name, proc in self.procs.items())
            order = self.order(session_id) or {}
            items = [(item["status"], item.get("error")) for item in order.get("items", [])][:5]
            raise AssertionError(f"{error}; order is {order.get('status')}, items (first 5) {items}\n{logs}") from None
        order = self.order(session_id)
        assert order is not None
        return order

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a ``crossfill`` ops command against this stack."""
        return subprocess.run([sys.executable, "-m", "crossfill.cli", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    def post_event(self, event: dict[str, Any]) -> requests.Response:
        """Deliver an event straight to the receiver, signed as Stripe would."""
        import time

        from fulfillment.signing import sign

        body = json.dumps(event).encode()
        secret = self.destination_secret if event.get("object") == "v2.core.event" else WEBHOOK_SECRET
        header = sign(body, [secret], timestamp=int(time.time()))
        return requests.post(self.receiver_url, data=body, headers={"Stripe-Signature": header}, timeout=10)

    def keys_of(self, session_id: str) -> list[str]:
        """The idempotency keys of an order's items."""
        order = self.order(session_id) or {"items": []}
        return [f"{session_id}:{item['id']}" for item in order["items"]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    redis = RedisServer(tmp / "redis")
    # A module may sign its connected accounts' calls with their own secrets: STACK_HANDLER_SECRETS.
    target = FulfillmentTarget(HANDLER_SECRET, getattr(request.module, "STACK_HANDLER_SECRETS", {}))
    catalog = tmp / "catalog.toml"
    # A module may bring its own catalog: STACK_CATALOG(target_url) -> TOML.
    catalog.write_text(getattr(request.module, "STACK_CATALOG", catalog_toml)(target.url))
    sim_port, web_port = free_port(), free_port()
    env = process_env(STACK_ENV, redis_url=redis.url, data_dir=tmp / "data", web_port=web_port, sim_port=sim_port,
                      catalog=catalog, webhook_secret=WEBHOOK_SECRET, handler_secret=HANDLER_SECRET,
                      api_key="sk_test_crossfill_pipeline")
    env.update(getattr(request.module, "STACK_EXTRA_ENV", {}))  # a module's own settings (e.g. short intervals)
    # What the simulator sends the receiver: a module may ask for thin events too (or only).
    payloads = getattr(request.module, "STACK_PAYLOADS", ("snapshot",))
    procs = {
        "sim": crossfill("sim", ["sim", "--port", str(sim_port), "--catalog", str(catalog),
                                 "--retry-base-ms", "200"], env, tmp),
    }
    try:
        wait_until(lambda: port_open(sim_port), timeout=20, what="the simulator")
        sim = SimClient(f"http://127.0.0.1:{sim_port}", "sk_test_crossfill_pipeline")
        receiver_url = f"http://127.0.0.1:{web_port}/webhooks/stripe"
        endpoint_id = destination_id = None
        destination_secret = ""
        if "snapshot" in payloads:
            endpoint_id = sim.post("/v1/webhook_endpoints", {"url": receiver_url, "secret": WEBHOOK_SECRET,
                                                             "enabled_events": list(HANDLED_TYPES)})["id"]
        if "thin" in payloads:
            # Stripe picks a destination's secret: the receiver starts with it as one more secret.
            created = requests.post(f"{sim.base_url}/v2/core/event_destinations", timeout=10, json={
                "name": "pipeline", "type": "webhook_endpoint", "event_payload": "thin",
                "enabled_events": list(THIN_HANDLED_TYPES), "webhook_endpoint": {"url": receiver_url},
                "include": ["webhook_endpoint.signing_secret"]},
                headers={"Authorization": "Bearer sk_test_crossfill_pipeline"}).json()
            destination_id, destination_secret = created["id"], created["webhook_endpoint"]["signing_secret"]
            env["STRIPE_WEBHOOK_SECRET"] = f"{WEBHOOK_SECRET},{destination_secret}"
        procs["web"] = crossfill("web", ["web"], env, tmp)
        wait_until(lambda: port_open(web_port), timeout=20, what="the receiver")
        stack = Stack(tmp=tmp, redis=redis, target=target, env=env, sim=sim, shop=Shop(sim),
                      receiver_url=receiver_url, procs=procs, endpoint_id=endpoint_id,
                      destination_id=destination_id, destination_secret=destination_secret,
                      metrics_url=f"http://127.0.0.1:{env['CROSSFILL_METRICS_PORT']}/metrics")
        stack.start_worker()
        yield stack
    finally:
        for proc in procs.values():
            proc.stop()
        target.stop()
        redis.stop()


@pytest.fixture
def fresh(stack: Stack) -> Iterator[Stack]:
    """The module's stack with the target reset and no faults; a worker running."""
    stack.target.status, stack.target.delay_s = 200, 0.0
    stack.target.entered.clear()
    stack.sim.delete("/sim/faults")
    if not stack.procs["worker"].alive():
        stack.start_worker()
    yield stack
    stack.sim.delete("/sim/faults")


def _run_beat(stack: Stack, settings: dict[str, str]) -> Iterator[Proc]:
    proc = crossfill("beat", ["beat"], {**stack.env, **settings}, stack.tmp)
    stack.procs["beat"] = proc
    yield proc
    proc.stop()
    stack.procs.pop("beat", None)


@pytest.fixture
def beat(fresh: Stack) -> Iterator[Proc]:
    """Celery beat on the stack: sweep every 2 s, reconcile every 3 s."""
    yield from _run_beat(fresh, {"CROSSFILL_SWEEP_EVERY": "2", "CROSSFILL_RECONCILE_EVERY": "3"})


@pytest.fixture
def sweeping_beat(fresh: Stack) -> Iterator[Proc]:
    """Celery beat on the stack sweeping every 2 s, reconciliation on its default (every 10 min): what
    comes back, the sweeper brought back (reconciliation would fulfil a lost event's session too)."""
    yield from _run_beat(fresh, {"CROSSFILL_SWEEP_EVERY": "2"})
