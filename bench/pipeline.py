"""CPU per order, crossfill against Celery's own floor, in interleaved windows of one run.

    make bench-pipeline                    # = python bench/pipeline.py; about 3 minutes
    python bench/pipeline.py --rounds 3 --handler log

What runs, all real processes on loopback, side by side for the whole run:

* one redis-server, shared;
* the simulator (``bench/flash_sim.py``: every session paid before it serves; rate limits off, no
  added latency — the simulator's CPU is not counted);
* **crossfill**: ``crossfill web`` (gunicorn, 5 workers x 4 threads) and ``crossfill worker -p 2 -c
  16``; every item goes to a fulfillment sink in this process (``--handler http``, the default) or to
  the ``log`` handler. crossfill's rate limiter runs (one Lua call per API call) with its limits
  raised to 1,000/s so that it never holds a call back;
* **the floor** (``bench/floor_app.py``): a receiver that only ``send_task``s under the same gunicorn
  command line, and two worker processes of the same Celery configuration, threads and concurrency
  whose event task sends three item tasks and whose item task does nothing.

Every order is one ``checkout.session.completed`` webhook of a session with two items and the
cross-sell the buyer added (three line items). The same signed webhooks go to either receiver
(``bench/loadgen.py``, open loop, its own process). Windows alternate crossfill / floor (the order
swaps each round), at ``--rate`` orders/s (30: about what Stripe permits) and at saturation
(``--burst-orders`` offered at once, drained as fast as the system can). A window lasts from the
first webhook to the last item done (crossfill: at the sink or in the ledger; the floor: its queues
and Celery's unacked set empty). CPU per order = CPU time of that system's receiver, workers and
Redis over the window / orders. Target: crossfill <= 1.2 x the floor at both rates.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from flash_sale import (  # noqa: E402
    HANDLER_SECRET,
    SECRET,
    LoadMeter,
    Sink,
    _tree,
    cpu_seconds,
    gunicorn_command,
    machine_line,
    post_events,
    settle,
    wait_port,
)
from flash_sim import catalog_toml  # noqa: E402
from floor_app import EVENT_QUEUE, ITEM_QUEUE  # noqa: E402

from crossfill.embedded import free_port, redis_argv  # noqa: E402
from crossfill.supervisor import Supervisor  # noqa: E402

CROSSFILL = [sys.executable, "-m", "crossfill.cli"]
TARGET_RATIO = 1.2


@dataclass
class Window:
    system: str
    load: str
    orders: int
    seconds: float
    cpu_s: dict[str, float]  #: web, workers, redis
    ack_p99_ms: float
    failed: int
    other_share: float

    @property
    def cpu_per_order_ms(self) -> float:
        return 1000 * sum(self.cpu_s.values()) / self.orders


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="crossfill-pipeline-"))
        self.sink = Sink(HANDLER_SECRET)
        self.supervisor = Supervisor()
        catalog = self.tmp / "catalog.toml"
        text = catalog_toml(self.sink.url)
        if args.handler == "log":
            text = text.replace('handler = "http"', 'handler = "log"')
        catalog.write_text(text, encoding="utf-8")
        self.redis_port, sim_port = free_port(), free_port()
        self.ports = {"crossfill": free_port(), "floor": free_port()}
        if args.before:
            self.ports["crossfill-single"] = free_port()
        self.supervisor.start("redis", redis_argv(self.tmp, self.redis_port), log_dir=self.tmp / "logs")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CROSSFILL_", "STRIPE_", "PROMETHEUS_"))}
        env.update({
            "CROSSFILL_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0", "CROSSFILL_DATA_DIR": str(self.tmp),
            "CROSSFILL_PORT": str(self.ports["crossfill"]), "STRIPE_WEBHOOK_SECRET": SECRET,
            "CROSSFILL_CATALOG": str(catalog), "STRIPE_API_KEY": "sk_test_bench_pipeline",
            "STRIPE_API_BASE": f"http://127.0.0.1:{sim_port}", "CROSSFILL_HANDLER_SECRET": HANDLER_SECRET,
            "CROSSFILL_STRIPE_RATE_LIMIT": "1000", "CROSSFILL_STRIPE_ENDPOINT_RATE_LIMIT": "1000",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(REPO / "bench"), env.get("PYTHONPATH")])),
        })
        self.events_file = self.tmp / "events.jsonl"
        per_round = args.orders + args.burst_orders
        self.supervisor.start("sim", [sys.executable, str(REPO / "bench" / "flash_sim.py"), "--port", str(sim_port),
                                      "--catalog", str(catalog), "--purchases", str(args.rounds * per_round),
                                      "--items", "2", "--cross-sell-every", "1", "--rate-limits", "off",
                                      "--out", str(self.events_file)], env, self.tmp / "logs")
        # each gunicorn's master serves /metrics on a port of its own (webhooks/gunicorn_conf.py)
        self.supervisor.start("crossfill-web", [*CROSSFILL, "web"], {**env, "CROSSFILL_METRICS_PORT": str(free_port())},
                              self.tmp / "logs")
        self.supervisor.start("crossfill-workers", [*CROSSFILL, "worker", "-p", str(args.worker_procs), "-c",
                                                    str(args.concurrency), "--loglevel", "WARNING"],
                              env, self.tmp / "logs")
        if args.before:
            # The same code reading each session alone (CROSSFILL_BATCH_READS=0): the "before" of the
            # batched reads, on a Redis database of its own so that the two never take each other's messages.
            single = {**env, "CROSSFILL_BATCH_READS": "0", "CROSSFILL_PORT": str(self.ports["crossfill-single"]),
                      "CROSSFILL_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/1"}
            self.supervisor.start("crossfill-single-web", [*CROSSFILL, "web"],
                                  {**single, "CROSSFILL_METRICS_PORT": str(free_port())}, self.tmp / "logs")
            self.supervisor.start("crossfill-single-workers", [*CROSSFILL, "worker", "-p", str(args.worker_procs),
                                                               "-c", str(args.concurrency), "--loglevel", "WARNING"],
                                  single, self.tmp / "logs")
            self.redis_single = redis.Redis(port=self.redis_port, db=1, decode_responses=True)
        self.supervisor.start("floor-web", gunicorn_command("floor_app:create_web()", self.ports["floor"]),
                              {**env, "CROSSFILL_METRICS_PORT": str(free_port())},
                              self.tmp / "logs")
        for n in range(args.worker_procs):
            self.supervisor.start(f"floor-worker{n}", [sys.executable, str(REPO / "bench" / "floor_app.py"), "worker",
                                                       "-c", str(args.concurrency // args.worker_procs)],
                                  env, self.tmp / "logs")
        wait_port(sim_port, timeout=300)
        for port in self.ports.values():
            wait_port(port)
        self.redis = redis.Redis(port=self.redis_port, decode_responses=True)
        self.purchases = [json.loads(line) for line in self.events_file.read_text(encoding="utf-8").splitlines()]
        settle([proc.pid for proc in self.supervisor.children.values()])
        self.spied: set[tuple[str, str]] = set()

    def stop(self) -> None:
        self.supervisor.stop_all()
        self.sink.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def trees(self, system: str) -> dict[str, list[int]]:
        kids = self.supervisor.children
        if system.startswith("crossfill"):
            web, workers = _tree(kids[f"{system}-web"].pid), _tree(kids[f"{system}-workers"].pid)
        else:
            web = _tree(kids["floor-web"].pid)
            workers = [p for name, proc in kids.items() if name.startswith("floor-worker") for p in _tree(proc.pid)]
        return {"web": web, "workers": workers, "redis": [kids["redis"].pid]}

    def spy(self, system: str, load: str, seconds: float) -> list[subprocess.Popen[bytes]]:
        """With --py-spy DIR, sample every worker process of *system* (the thread holding the GIL) through
        its first window at *load*; one collapsed-stack file per process (bench/spy_summary.py reads them)."""
        if self.args.py_spy is None or (system, load) in self.spied:
            return []
        self.spied.add((system, load))
        self.args.py_spy.mkdir(parents=True, exist_ok=True)
        kids = self.supervisor.children
        roots = [kids[f"{system}-workers"].pid] if system.startswith("crossfill") else []
        pids = [p for p in self.trees(system)["workers"] if p not in roots]
        tag = f"{system}-{'steady' if load != 'saturation' else 'saturation'}"
        spy = shutil.which("py-spy", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        if spy is None:
            raise SystemExit("--py-spy: py-spy is not installed (pip install py-spy)")
        return [subprocess.Popen([spy, "record", "--pid", str(pid), "--gil", "--nonblocking", "--rate", "100",
                                  "--duration", str(int(seconds)), "--format", "raw",
                                  "--output", str(self.args.py_spy / f"{tag}-{pid}.txt")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]

    def done(self, system: str, keys: set[str], ledger_sessions: set[str]) -> bool:
        client = self.redis_single if system == "crossfill-single" else self.redis
        depth = client.pipeline(transaction=False)
        queues = ("events", "fulfillment") if system.startswith("crossfill") else (EVENT_QUEUE, ITEM_QUEUE)
        for queue in queues:
            depth.llen(queue)
        depth.hlen("unacked")
        if any(depth.execute()):
            return False
        if system == "floor":
            return True
        if self.args.handler == "http":
            return keys <= self.sink.first_at.keys()
        return ledger_sessions <= set(client.smembers("crossfill:orders:fulfilled"))

    def window(self, system: str, load: str, skip: int, count: int, rate: float) -> Window:
        chunk = self.purchases[skip:skip + count]
        keys = {f"{p['session']}:{item}" for p in chunk for item in p["line_items"]}
        sessions = {p["session"] for p in chunk}
        settle([proc.pid for proc in self.supervisor.children.values()], below_cores=0.2)
        trees = self.trees(system)
        meter = LoadMeter([os.getpid(), *(proc.pid for proc in self.supervisor.children.values())])
        before = {part: cpu_seconds(pids) for part, pids in trees.items()}
        spies = self.spy(system, load, count / rate + 5)
        meter.start()
        gen = post_events(self, self.ports[system], rate, count, self.args.connections, {}, skip=skip)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.args.timeout
        while not self.done(system, keys, sessions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system} {load}: not done after {self.args.timeout:g} s")
            time.sleep(0.1)
        ended = time.time()
        after = {part: cpu_seconds(pids) for part, pids in trees.items()}
        meter.stop()
        for spy in spies:
            spy.wait()
        return Window(system, load, count, ended - gen["start_wall"],
                      {part: after[part] - before[part] for part in trees}, gen["p99_ms"], gen["error_count"],
                      meter.other_share)


def report(windows: list[Window]) -> list[str]:
    lines = [f"{'window':<34} {'orders':>6} {'orders/s':>8} {'CPU ms/order':>12} {'web':>6} {'workers':>8} "
             f"{'redis':>6} {'ack p99':>8} {'other':>6}"]
    for w in windows:
        lines.append(f"{w.system + ', ' + w.load:<34} {w.orders:>6} {w.orders / w.seconds:>8.1f} "
                     f"{w.cpu_per_order_ms:>12.2f} "
                     + " ".join(f"{1000 * w.cpu_s[p] / w.orders:>{n}.2f}" for p, n in (("web", 6), ("workers", 8),
                                                                                        ("redis", 6)))
                     + f" {w.ack_p99_ms:>8.1f} {100 * w.other_share:>5.0f}%")
    lines.append("")
    for load in dict.fromkeys(w.load for w in windows):
        floor = [w.cpu_per_order_ms for w in windows if w.load == load and w.system == "floor"]
        for system in dict.fromkeys(w.system for w in windows if w.system != "floor"):
            ours = [w.cpu_per_order_ms for w in windows if w.load == load and w.system == system]
            ratios = [a / b for a, b in zip(ours, floor)]
            ratio = statistics.median(ratios)
            lines.append(f"{load}: {system} {statistics.median(ours):.2f} ms/order, floor "
                         f"{statistics.median(floor):.2f} (medians); ratio per round "
                         f"{', '.join(f'{r:.2f}' for r in ratios)}, median {ratio:.2f} "
                         f"(target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'MISSED'})")
        rates = [(w.system, w.orders / w.seconds) for w in windows if w.load == load]
        lines.append(f"{load}: orders/s " + ", ".join(f"{s} {r:.1f}" for s, r in rates))
    failed = sum(w.failed for w in windows)
    lines.append(f"webhooks not accepted in any window: {failed}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30.0, help="orders/s of the steady windows")
    parser.add_argument("--orders", type=int, default=450, help="orders per steady window (15 s at 30/s)")
    parser.add_argument("--burst-orders", type=int, default=600, help="orders per saturation window")
    parser.add_argument("--burst-rate", type=float, default=600.0, help="their offered rate, per second")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker-procs", type=int, default=2)
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--handler", choices=("http", "log"), default="http")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="sample the worker processes of both systems in their first window at each load "
                             "(py-spy record --gil, needs ptrace); summarise with bench/spy_summary.py")
    parser.add_argument("--before", action="store_true",
                        help="also run crossfill reading each session alone (CROSSFILL_BATCH_READS=0), interleaved")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(f"machine: {machine_line()}", flush=True)
    bench = Bench(args)
    windows: list[Window] = []
    try:
        skip = 0
        for n in range(args.rounds):
            systems = ("crossfill", "crossfill-single", "floor") if args.before else ("crossfill", "floor")
            order = systems if n % 2 == 0 else tuple(reversed(systems))
            for load, count, rate in ((f"{args.rate:g} orders/s", args.orders, args.rate),
                                      ("saturation", args.burst_orders, args.burst_rate)):
                for system in order:
                    windows.append(bench.window(system, load, skip, count, rate))
                    print(f"  {windows[-1].system}, {load}: {windows[-1].cpu_per_order_ms:.2f} ms/order", flush=True)
                skip += count
    finally:
        bench.stop()
    print(f"\nCPU per order (receiver + workers + Redis), handler {args.handler}, {args.worker_procs} worker "
          f"processes x {args.concurrency // args.worker_procs} threads, each order 3 line items (one cross-sell)")
    print("\n".join(report(windows)))
    if args.json:
        args.json.write_text(json.dumps([w.__dict__ for w in windows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
