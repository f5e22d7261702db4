"""Celery's own floor for ``bench/pipeline.py``: the same webhooks and the same tasks, doing nothing.

* ``floor_app:create_web()`` — a receiver (served by crossfill's gunicorn command line) that reads
  the event id from the body and ``send_task``s one event task; no signature, no inbox, no dedupe.
* ``python bench/floor_app.py worker -c N`` — a Celery worker run exactly as ``crossfill worker``
  runs one (``worker.app.make_celery``'s configuration, ``worker.broker.run_worker``, threads pool),
  on two queues of its own: ``floor.event`` sends one ``floor.item`` per line item (three: the
  order's two items and its cross-sell) through Celery's own publish path, and ``floor.item`` does
  nothing. ``floor.item`` keeps its result like ``fulfill_item`` (under a deterministic task id);
  ``floor.event`` does not, like ``process_event``.

Settings come from the same environment as crossfill's (``CROSSFILL_REDIS_URL`` ...).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from celery import Celery  # noqa: E402
from kombu import Exchange, Queue  # noqa: E402

from fulfillment.settings import load_settings  # noqa: E402
from worker.app import make_celery  # noqa: E402

EVENT_QUEUE, ITEM_QUEUE = "floor_events", "floor_items"
EVENT_TASK, ITEM_TASK = "floor.event", "floor.item"
ITEMS_PER_ORDER = 3


def make_floor() -> Celery:
    """crossfill's Celery configuration, with the two do-nothing tasks on queues of their own."""
    app = make_celery(load_settings(os.environ))
    app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in (EVENT_QUEUE, ITEM_QUEUE)]
    app.conf.task_routes = {EVENT_TASK: {"queue": EVENT_QUEUE, "routing_key": EVENT_QUEUE},
                            ITEM_TASK: {"queue": ITEM_QUEUE, "routing_key": ITEM_QUEUE}}

    @app.task(name=EVENT_TASK, ignore_result=True)
    def floor_event(event_id: str) -> None:
        for n in range(ITEMS_PER_ORDER):
            app.send_task(ITEM_TASK, args=[event_id, f"li_{n}"], task_id=f"floor:{event_id}:{n}")

    @app.task(name=ITEM_TASK, ignore_result=False)
    def floor_item(session_id: str, line_item_id: str) -> dict[str, Any]:
        return {"status": "done"}

    return app


def create_web() -> Any:
    """The floor's receiver: the body's event id, one send_task, 200."""
    from flask import Flask, Response, jsonify, request

    app = Flask(__name__)
    celery = make_floor()

    @app.post("/webhooks/stripe")
    def receive() -> Any:
        event_id = json.loads(request.get_data())["id"]
        celery.send_task(EVENT_TASK, args=[event_id], ignore_result=True)
        return jsonify({"received": True})

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    return app


def main(argv: list[str]) -> int:
    from crossfill.cli.service import worker_argv
    from worker.broker import run_worker

    concurrency = int(argv[argv.index("-c") + 1]) if "-c" in argv else 8
    args = worker_argv(concurrency, loglevel="WARNING")
    args[args.index("--queues") + 1] = f"{EVENT_QUEUE},{ITEM_QUEUE}"
    args[args.index("--hostname") + 1] = f"floor-{os.getpid()}@%h"
    return run_worker(make_floor(), args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
