"""crossfill beside the synchronous peer: the webhook handler of Stripe's fulfillment guide.

    make bench-peer                      # = python bench/peer_sync.py; about 4 minutes
    python bench/peer_sync.py --burst 1500

Both receivers run on the same machine, the same simulator (Stripe's live rate limits enforced),
the same fulfillment sink and the same gunicorn command line (``crossfill web``'s: gthread, 5
workers x 4 threads):

* **crossfill**: ``crossfill web`` records and enqueues, ``crossfill worker -p 2`` reads the session
  (paced by the shared rate limiter) and fulfils each item;
* **the peer** (``bench/peer_app.py``): verifies with the ``stripe`` SDK, retrieves the session with
  its line items, posts each item to the sink, and only then answers 200 (500 when anything failed,
  so Stripe would deliver again).

Two phases per receiver, on one stack each (the simulator pays every session up front; see
``bench/flash_sale.py``):

1. **300 ms API latency**: ``--steady`` purchases at ``--steady-rate``/s (below the 25 session
   reads/s Stripe permits, so the limit plays no part);
2. **the flash-sale burst**: ``--burst`` purchases at ``--burst-rate``/s with 50 ms API latency.

For each: webhook ack p50/p99 (from each request's scheduled time); deliveries that failed (non-2xx,
connection errors) or took longer than Stripe's 10 s timeout; orders fulfilled per second (orders
whose every item reached the sink, over the time from the first payment to the last such order);
the machine's other load. Deliveries that failed are not sent again here: Stripe would, hours later.
Target: crossfill's ack p99 at least 20 x lower than the peer's, and no failed delivery.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from flash_sale import (  # noqa: E402
    LoadMeter,
    Stack,
    _tree,
    expected_keys,
    gunicorn_command,
    machine_line,
    post_events,
    settle,
    sim_call,
    start_stack,
)

PEER_APP = "peer_app:create_app()"
TARGET_P99_RATIO = 20.0
STALL_S = 20.0  #: stop waiting for fulfilment once nothing new has reached the sink for this long, s


def run_phase(stack: Stack, args: argparse.Namespace, *, name: str, skip: int, count: int, rate: float,
              latency_ms: int, system: str) -> dict[str, Any]:
    sim_call(stack, "POST", "/sim/faults", {"latency_ms": latency_ms, "path_prefix": "/v1"})
    sim_call(stack, "DELETE", "/sim/stats")
    keys = {sid: ks for sid, ks in list(expected_keys(stack).items())[skip:skip + count]}
    wanted = {key for ks in keys.values() for key in ks}
    settle([proc.pid for proc in stack.supervisor.children.values()])
    meter = LoadMeter([os.getpid(), *(proc.pid for proc in stack.supervisor.children.values())])
    meter.start()
    gen = post_events(stack, stack.web_port, rate, count, args.connections,
                      {"web": _tree(stack.supervisor.children["web"].pid)}, skip=skip)
    deadline = time.monotonic() + args.timeout
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        done = len(wanted & stack.sink.first_at.keys())
        if done == len(wanted):
            break
        if done != seen:
            seen, quiet_since = done, time.monotonic()
        elif time.monotonic() - quiet_since > STALL_S:
            break
        time.sleep(0.5)
    meter.stop()
    stats = sim_call(stack, "GET", "/sim/stats")
    start = gen["start_wall"]
    finished = [max(stack.sink.first_at[k] for k in ks) for ks in keys.values()
                if ks and all(k in stack.sink.first_at for k in ks)]
    span = (max(finished) - start) if finished else float("nan")
    return {
        "system": system, "phase": name, "purchases": count, "rate": rate, "latency_ms": latency_ms,
        "ack_p50_ms": gen["p50_ms"], "ack_p99_ms": gen["p99_ms"], "ack_max_ms": gen["max_ms"],
        "statuses": gen["statuses"], "errors": gen["errors"],
        "failed": gen["error_count"], "over_10s": gen["over_10s"] + gen["errors"].get("timeout", 0),
        "orders_fulfilled": len(finished), "orders_per_s": len(finished) / span if finished else 0.0,
        "api_requests": stats["requests"], "api_429": stats["rate_limited"],
        "lost_items": len(wanted - stack.sink.first_at.keys()),
        "load": meter.describe(),
    }


def run_system(args: argparse.Namespace, system: str) -> list[dict[str, Any]]:
    peer = system == "peer"
    stack = start_stack(args, args.steady + args.burst,
                        web_argv=(lambda port: gunicorn_command(PEER_APP, port)) if peer else None,
                        workers=not peer)
    try:
        return [
            run_phase(stack, args, name=f"{args.steady_latency_ms} ms API, {args.steady_rate:g}/s", skip=0,
                      count=args.steady, rate=args.steady_rate, latency_ms=args.steady_latency_ms, system=system),
            run_phase(stack, args, name=f"burst {args.burst_rate:g}/s, {args.burst_latency_ms} ms API",
                      skip=args.steady, count=args.burst, rate=args.burst_rate, latency_ms=args.burst_latency_ms,
                      system=system),
        ]
    finally:
        stack.stop()


def report(results: list[dict[str, Any]]) -> list[str]:
    by = {(r["system"], r["phase"]): r for r in results}
    phases = list(dict.fromkeys(r["phase"] for r in results))
    lines = [f"{'phase':<30} {'figure':<36} {'crossfill':>10} {'peer':>10} {'peer/crossfill':>15}"]
    for phase in phases:
        ours, theirs = by[("crossfill", phase)], by[("peer", phase)]
        for label, key, fmt in (("ack p50, ms", "ack_p50_ms", "{:.1f}"), ("ack p99, ms", "ack_p99_ms", "{:.1f}"),
                                ("failed deliveries (non-2xx, errors)", "failed", "{:d}"),
                                ("deliveries over Stripe's 10 s", "over_10s", "{:d}"),
                                ("orders fulfilled", "orders_fulfilled", "{:d}"),
                                ("orders fulfilled per second", "orders_per_s", "{:.1f}"),
                                ("API calls answered 429 / all", None, ""),
                                ("items not fulfilled", "lost_items", "{:d}")):
            if key is None:
                a = f"{ours['api_429']}/{ours['api_requests']}"
                b = f"{theirs['api_429']}/{theirs['api_requests']}"
                ratio = ""
            else:
                a, b = fmt.format(ours[key]), fmt.format(theirs[key])
                ratio = f"{theirs[key] / ours[key]:.1f}" if key.startswith("ack") and ours[key] else ""
            lines.append(f"{phase:<30} {label:<36} {a:>10} {b:>10} {ratio:>15}")
        p99_ratio = theirs["ack_p99_ms"] / ours["ack_p99_ms"]
        lines.append(f"{phase:<30} target: crossfill's ack p99 >= {TARGET_P99_RATIO:g} x lower: {p99_ratio:.1f} x "
                     f"({'met' if p99_ratio >= TARGET_P99_RATIO else 'MISSED'}); crossfill failed deliveries: "
                     f"{ours['failed'] + ours['over_10s']} ({'met' if ours['failed'] + ours['over_10s'] == 0 else 'MISSED'})")
    for r in results:
        lines.append(f"machine, {r['system']}, {r['phase']}: {r['load']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steady", type=int, default=300, help="purchases of the 300 ms phase")
    parser.add_argument("--steady-rate", type=float, default=20.0, help="their pace, per second")
    parser.add_argument("--steady-latency-ms", type=int, default=300)
    parser.add_argument("--burst", type=int, default=3000, help="purchases of the flash-sale burst")
    parser.add_argument("--burst-rate", type=float, default=300.0)
    parser.add_argument("--burst-latency-ms", type=int, default=50)
    parser.add_argument("--rate-limits", default="live", choices=("live", "test", "off"))
    parser.add_argument("--worker-procs", type=int, default=2)
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument("--connections", type=int, default=64,
                        help="the generator's connections (Stripe's deliveries in flight at once)")
    parser.add_argument("--timeout", type=float, default=300, help="longest wait for a phase's fulfilment, s")
    parser.add_argument("--systems", default="crossfill,peer")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(f"machine: {machine_line()}", flush=True)
    results = []
    for system in args.systems.split(","):
        results += run_system(args, system)
        print(f"{system}: done", flush=True)
    if len(results) == 4:
        print("\n".join(report(results)))
    else:
        print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
