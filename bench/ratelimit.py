"""Benchmark the shared rate limiter: many worker processes drain a burst of orders under Stripe's limits.

    python bench/ratelimit.py                              # 1,000 orders, 4 worker processes x 16 threads
    python bench/ratelimit.py --orders 300 --worker-procs 2
    python bench/ratelimit.py --no-limiter                 # the baseline: every worker calls as fast as it can
    python bench/ratelimit.py --accounts 3                 # Connect: the orders of 3 connected accounts, each limited

What runs, all real processes on loopback: a redis-server, the simulator enforcing Stripe's test-mode
limits (``crossfill sim --rate-limits test -v``: 25 requests in any second per account, and 25 per
endpoint; every request logged), the receiver (``crossfill web``) and ``--worker-procs`` workers
(``crossfill worker --concurrency --threads``), each on its own, sharing nothing but Redis.

Sessions are created first (payment mode, the demo product and its cross-sell), paced by the same
shared limiter (the bench is a client of the account too); then every buyer pays at once, and once
the receiver has queued every event, the workers start. They want far more than 25 calls/s (64
threads); the limiter makes them queue in Redis.

The simulator's tallies (``GET /sim/stats``, reset once the sessions exist) give the session reads
and every 429 of the drain; its request log gives the window from the first to the last session
read. Achieved rate = successful reads per second over that window, against the permitted 25/s (the
ratio; target >= 0.9), and the number of 429s (target: almost none).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from crossfill.embedded import free_port, redis_argv  # noqa: E402
from crossfill.local import register_endpoint  # noqa: E402
from crossfill.supervisor import Supervisor  # noqa: E402
from fulfillment.inbox import Inbox  # noqa: E402
from fulfillment.liveness import alive_workers  # noqa: E402
from fulfillment.ratelimit import RateLimiter, RateLimits, endpoint_of  # noqa: E402
from messaging.contract import EVENTS_QUEUE  # noqa: E402
from simulator.client import SimClient  # noqa: E402
from simulator.errors import RemoteError  # noqa: E402
from simulator.scenario import DEMO_CATALOG_PATH, PRO, ensure_account, ensure_demo_catalog  # noqa: E402

SECRET = "whsec_bench_ratelimit_0123456789abcdef"
CROSSFILL = [sys.executable, "-m", "crossfill.cli"]
TEST_MODE_RATE = 25.0  #: Stripe's test-mode limit per account (and per endpoint), requests/s
TARGET_RATIO = 0.9
HELD = "crossfill:bench:held-events"  #: where the queued burst waits while the workers start
TARGET_429_SHARE = 0.01  #: "almost no 429s": at most this share of the session reads
#: A session read in the simulator's request log (``-v``): its time, path and status.
SESSION_READS = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*GET (/v1/checkout/sessions/\S+) HTTP/[\d.]+\"? (\d{3})")
ANSI = re.compile(r"\x1b\[[\d;]*m")  #: werkzeug colours a 4xx in its log


@dataclass(frozen=True)
class Result:
    """What one drain did, read from the simulator's log."""

    orders: int
    reads_ok: int  #: GET /v1/checkout/sessions/{id}[/line_items] answered, less the 429s
    rate_limited: int  #: 429s the simulator answered during the drain, any endpoint
    window_s: float  #: first to last session read, seconds
    drain_s: float  #: the workers' start to the last order fulfilled, seconds
    permitted_per_s: float
    list_reads: int = 0  #: GET /v1/checkout/sessions answered (batched reads), less the 429s

    @property
    def achieved_per_s(self) -> float:
        return (self.reads_ok - 1) / self.window_s if self.window_s > 0 else 0.0

    @property
    def ratio(self) -> float:
        return self.achieved_per_s / self.permitted_per_s

    def report(self) -> str:
        return (f"{self.orders} orders drained in {self.drain_s:.1f} s; {self.reads_ok} session reads in "
                f"{self.window_s:.1f} s = {self.achieved_per_s:.1f}/s of {self.permitted_per_s:g}/s permitted "
                f"(ratio {self.ratio:.2f}, target >= {TARGET_RATIO}); 429s: {self.rate_limited} "
                f"(target <= {TARGET_429_SHARE:.0%} of the reads)")


def read_window(log: Path, since: float) -> float:
    """Seconds from the first to the last session read the simulator answered 200 after *since*."""
    first, last = None, None
    for line in log.read_text(errors="replace").splitlines():
        match = SESSION_READS.match(ANSI.sub("", line))
        if not match or match.group(3) != "200":
            continue
        stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if stamp >= since:
            first = stamp if first is None else first
            last = stamp
    return (last - first) if first is not None and last is not None else 0.0


def session_reads(stats: dict[str, Any]) -> tuple[int, int]:
    """(successful session reads, 429s on any endpoint) from the simulator's ``/sim/stats``."""
    reads = [counts for name, counts in stats["endpoints"].items() if name.startswith("GET /v1/checkout/sessions/")]
    return sum(c["requests"] - c["rate_limited"] for c in reads), int(stats["rate_limited"])


def list_reads(stats: dict[str, Any]) -> int:
    """Successful ``GET /v1/checkout/sessions`` (a batch's page) from the simulator's ``/sim/stats``."""
    counts = stats["endpoints"].get("GET /v1/checkout/sessions", {"requests": 0, "rate_limited": 0})
    return int(counts["requests"] - counts["rate_limited"])


def drain(*, orders: int, worker_procs: int, threads: int, timeout: float, tmp: Path,
          worker_env: dict[str, str] | None = None, accounts: int = 0) -> Result:
    """Start the stack in *tmp*, create *orders* sessions, enforce the limit, pay them all, wait for
    every order to be fulfilled, and read the simulator's log. Everything started is stopped.

    With *accounts*, the orders are spread over that many connected accounts (Connect), each with
    its own limits: the permitted rate is that many times the one account's."""
    supervisor = Supervisor()
    logs = tmp / "logs"
    redis_port, sim_port, web_port = free_port(), free_port(), free_port()
    supervisor.start("redis", redis_argv(tmp, redis_port), log_dir=logs)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CROSSFILL_", "STRIPE_", "PROMETHEUS_"))}
    env.update({
        "CROSSFILL_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROSSFILL_DATA_DIR": str(tmp),
        "CROSSFILL_PORT": str(web_port), "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_KEY": "sk_test_bench_ratelimit", "STRIPE_API_BASE": f"http://127.0.0.1:{sim_port}",
        "CROSSFILL_CATALOG": str(DEMO_CATALOG_PATH),
        # Retries of a 429 come back fast, so that a limiter that lets them happen is seen paying for it.
        "CROSSFILL_RETRY_BASE": "0.5", "CROSSFILL_RETRY_CAP": "5",
    })
    try:
        supervisor.start("sim", [*CROSSFILL, "sim", "-v", "--rate-limits", "test", "--port", str(sim_port),
                                 "--catalog", str(DEMO_CATALOG_PATH), "--delivery-workers", "32"], env, logs)
        supervisor.start("web", [*CROSSFILL, "web"], {**env, "CROSSFILL_METRICS_PORT": str(free_port())}, logs)
        _wait_port(sim_port)
        _wait_port(web_port)
        register_endpoint(f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{web_port}/webhooks/stripe", SECRET)
        client = redis.Redis(port=redis_port, decode_responses=True)
        sim_url = f"http://127.0.0.1:{sim_port}"
        names: list[str | None] = [f"acct_1Bench{n}" for n in range(accounts)] or [None]
        with SimClient(sim_url, env["STRIPE_API_KEY"]) as sim:
            if accounts:
                sim.post("/v1/webhook_endpoints", {"url": f"http://127.0.0.1:{web_port}/webhooks/stripe",
                                                   "enabled_events": ["*"], "secret": SECRET, "connect": "true"})
                for name in names:
                    ensure_account(sim, str(name))
            shops = {name: SimClient(sim_url, env["STRIPE_API_KEY"], account=name) for name in names}
            prices = {name: ensure_demo_catalog(shop)[PRO] for name, shop in shops.items()}
            # Those few calls went unpaced: let them leave the simulator's last second before pacing.
            time.sleep(1.1)
            # The bench creates the sessions as a client of the same accounts: under the same limiter.
            pace = RateLimiter(client, RateLimits.for_key(env["STRIPE_API_KEY"], max_wait_s=3600))
            create = endpoint_of("POST", "/v1/checkout/sessions")

            def new_session(number: int) -> tuple[str | None, str]:
                name = names[number % len(names)]
                while True:
                    pace.acquire(name, create)
                    try:
                        session = shops[name].post("/v1/checkout/sessions", {
                            "mode": "payment", "line_items": [{"price": prices[name], "quantity": 1}],
                            "success_url": "http://127.0.0.1/ok"})
                        return name, str(session["id"])
                    except RemoteError as error:
                        if error.status != 429:
                            raise
                        pace.cool_down(name, create, 1.0)  # what the worker's client does on a 429

            with ThreadPoolExecutor(16) as pool:
                created = list(pool.map(new_session, range(orders)))
                list(pool.map(lambda made: shops[made[0]].post(f"/sim/checkout/sessions/{made[1]}/cross_sell"),
                              created))
            sessions = [sid for _, sid in created]
            sim.delete("/sim/stats")  # count the drain only
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda made: shops[made[0]].post(f"/sim/checkout/sessions/{made[1]}/complete",
                                                               {"outcome": "paid"}), created))
            # The burst is queued (every event recorded and enqueued by the receiver), then held aside
            # while the workers start (four processes booting on two cores would skew the first
            # seconds), and given back at once: the drain is the workers' alone, on a simulator that
            # serves nothing else.
            _wait_for(lambda: Inbox(client).counts()["enqueued"] >= orders, timeout, "every event to be enqueued")
            client.rename(EVENTS_QUEUE, HELD)
            for number in range(worker_procs):
                supervisor.start(f"worker{number}", [*CROSSFILL, "worker", "--concurrency", str(threads),
                                                     "--loglevel", "WARNING"], {**env, **(worker_env or {})}, logs)
            _wait_for(lambda: len(alive_workers(client)) >= worker_procs, 120, "every worker's first heartbeat")
            started = time.time()
            client.rename(HELD, EVENTS_QUEUE)
            pending, deadline = set(sessions), time.monotonic() + timeout
            while pending and time.monotonic() < deadline:
                time.sleep(0.5)  # only Redis is polled: a read of the API would count against the limit
                pending -= set(client.smembers("crossfill:orders:fulfilled"))
            drained = time.time() - started
            if pending:
                raise RuntimeError(f"{len(pending)} of {orders} orders not fulfilled within {timeout:g} s; "
                                   f"logs in {logs}")
            stats = sim.get("/sim/stats")
            ok, limited = session_reads(stats)
            for shop in shops.values():
                shop.close()
        return Result(orders, ok, limited, read_window(logs / "sim.log", started), drained,
                      TEST_MODE_RATE * len(names), list_reads(stats))
    finally:
        supervisor.stop_all()


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--worker-procs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=16, help="threads per worker process")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--accounts", type=int, default=0,
                        help="spread the orders over this many connected accounts (each limited on its own)")
    parser.add_argument("--batch-reads", default="0",
                        help="CROSSFILL_BATCH_READS of the workers (0, the default here: one read per order)")
    parser.add_argument("--no-limiter", action="store_true",
                        help="the baseline: workers call as fast as they can (both rate-limit settings 0)")
    args = parser.parse_args()
    off = {"CROSSFILL_STRIPE_RATE_LIMIT": "0", "CROSSFILL_STRIPE_ENDPOINT_RATE_LIMIT": "0"}
    result = drain(orders=args.orders, worker_procs=args.worker_procs, threads=args.threads, timeout=args.timeout,
                   tmp=Path(tempfile.mkdtemp(prefix="crossfill-bench-ratelimit-")),
                   worker_env={**(off if args.no_limiter else {}), "CROSSFILL_BATCH_READS": args.batch_reads},
                   accounts=args.accounts)
    print(f"crossfill rate-limit benchmark — {os.cpu_count()} cores, {args.worker_procs} worker processes x "
          f"{args.threads} threads, simulator enforcing {TEST_MODE_RATE:g} session reads/s per account (test mode), "
          f"{args.accounts or 'no'} connected account(s), limiter {'off' if args.no_limiter else 'on'}")
    print(result.report())


if __name__ == "__main__":
    main()
