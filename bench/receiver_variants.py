"""Receiver variants for experiments with ``bench/receiver.py --app``: not production code.

    PYTHONPATH=bench python bench/receiver.py --app 'receiver_variants:lean_enqueue()'

Each factory builds the real receiver (``webhooks.create_app()``, settings from the environment as
under gunicorn) and changes one thing, so that a change can be measured before it is made for real.
BENCHMARKS.md gives the figures.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any

from flask import Flask

from webhooks import create_app


def with_result_backend() -> Flask:
    """The receiver's Celery app with the Redis result backend (as before it was switched off)."""
    app = create_app()
    celery = app.extensions["crossfill"]["celery"]
    celery.conf.result_backend = celery.conf.broker_url
    return app


def lean_enqueue() -> Flask:
    """The receiver with ``send_task`` replaced by one LPUSH of the message Celery would have sent.

    The message is Celery's task protocol 2 in kombu's Redis envelope, as kombu 5 writes it for the
    ``events`` queue at the default priority; the Celery worker runs it like any other (checked with
    ``celery --app worker.main worker``). It skips Celery's routing, the producer pool, the result
    object and kombu's per-publish Redis client. Not production code: it hard-codes kombu's format.
    """
    app = create_app()
    parts = app.extensions["crossfill"]
    client = parts["inbox"]._redis  # the receiver's own pooled client
    origin = f"gen{os.getpid()}@{socket.gethostname()}"

    def send_task(name: str, args: list[Any], queue: str, retry: bool = False) -> None:
        task_id = str(uuid.uuid4())
        body = json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
        message = {
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None, "expires": None,
                        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
                        "root_id": task_id, "parent_id": None, "argsrepr": repr(args), "kwargsrepr": "{}",
                        "origin": origin, "ignore_result": True, "replaced_task_nesting": 0,
                        "stamped_headers": None, "stamps": {}},
            "properties": {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                           "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                           "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
        }
        client.lpush(queue, json.dumps(message))

    parts["celery"].send_task = send_task
    return app
