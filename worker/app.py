"""The Celery app, configured for at-least-once delivery on Redis."""
from __future__ import annotations

import base64
import json
import uuid
from functools import cached_property
from typing import Any

import redis
from celery import Celery
from kombu import Exchange, Queue
from kombu.serialization import dumps as serialize

from fulfillment import defaults
from fulfillment.catalog import Catalog, load_catalog
from fulfillment.deadletters import DeadLetters
from fulfillment.handlers import HandlerRegistry
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.settings import Settings
from fulfillment.store import connect
from fulfillment.stripe_api import StripeClient
from worker.broker import harden_kombu_redis

EVENTS_QUEUE = "events"
FULFILLMENT_QUEUE = "fulfillment"
PROCESS_EVENT = "process_event"
FULFILL_ITEM = "fulfill_item"


class Runtime:
    """What a task needs besides its arguments: settings and the stores, opened lazily per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(self.settings.resolved_redis_url)

    @cached_property
    def inbox(self) -> Inbox:
        return Inbox(self.redis)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.redis)

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.catalog_path)

    @cached_property
    def stripe(self) -> StripeClient:
        return StripeClient(self.settings)

    @cached_property
    def handlers(self) -> HandlerRegistry:
        return HandlerRegistry()


class CrossfillCelery(Celery):
    """A Celery app that carries crossfill's :class:`Runtime`."""

    runtime: Runtime


def make_celery(settings: Settings) -> CrossfillCelery:
    """Build the Celery app for *settings*: broker and results on Redis, late acks, JSON only."""
    url = settings.resolved_redis_url
    harden_kombu_redis()  # a worker survives its Redis being killed under load (worker/broker.py)
    app = CrossfillCelery("crossfill", set_as_current=False)
    app.runtime = Runtime(settings)
    app.conf.update(
        broker_url=url,
        result_backend=url,
        broker_connection_retry_on_startup=True,
        # Reconnect for as long as Redis is away (Celery gives up after 100 attempts, ~50 min, by default):
        # Stripe retries for days, and a worker that gave up is one more thing to restart.
        broker_connection_max_retries=None,
        # A task that cannot publish (its retry, its items) while Redis restarts keeps trying for ~20 s
        # instead of the default ~1 s: a publish that fails fails the task, and Celery then acknowledges
        # its message, so a Redis restart under load would drop that work (measured: an event left
        # `processing` with no message anywhere).
        task_publish_retry_policy={"max_retries": 12, "interval_start": 0, "interval_step": 0.5,
                                   "interval_max": 2},
        broker_transport_options={
            "socket_connect_timeout": defaults.REDIS_CONNECT_TIMEOUT_S,
            "socket_timeout": defaults.REDIS_SOCKET_TIMEOUT_S,
            # A task whose worker died is redelivered once the visibility timeout has passed AND a
            # worker's periodic sweep runs (every interval x throttle seconds): keep the sweep short.
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # At least once: a task is acknowledged after it ran, and re-queued if its worker dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Honoured by the prefork pool; under the threads pool every call's HTTP timeout bounds a task.
        task_time_limit=defaults.TASK_TIME_LIMIT_S,
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in (EVENTS_QUEUE, FULFILLMENT_QUEUE)],
        task_default_queue=EVENTS_QUEUE,
        task_routes={PROCESS_EVENT: {"queue": EVENTS_QUEUE, "routing_key": EVENTS_QUEUE},
                     FULFILL_ITEM: {"queue": FULFILLMENT_QUEUE, "routing_key": FULFILLMENT_QUEUE}},
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=False,
        # Task events (Flower's live view) cost three extra messages per task; `celery events` or
        # Flower can switch them on at run time (`celery control enable_events`).
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    from worker import tasks

    tasks.register(app)
    return app


def task_message(app: Celery, name: str, args: list[Any], *, queue: str, ignore_result: bool = True,
                 task_id: str | None = None) -> str:
    """The message ``app.send_task(name, args, queue=queue)`` would push onto the Redis list *queue*.

    Celery builds the task itself (protocol 2, ``app.amqp.as_task_v2``); this wraps it in kombu's
    Redis envelope, so that the receiver can push it inside the inbox's own Lua script: recording
    the event and enqueueing it become one atomic Redis call instead of three round trips.
    ``tests/unit/test_task_message.py`` holds it equal to what ``send_task`` writes, field by field,
    so a Celery or kombu upgrade that changes the format fails the suite instead of the service.
    """
    task_id = task_id or str(uuid.uuid4())
    task = app.amqp.as_task_v2(task_id, name, args=args, kwargs={}, ignore_result=ignore_result)
    content_type, content_encoding, body = serialize(task.body, serializer="json")
    envelope = {
        "body": base64.b64encode(body.encode() if isinstance(body, str) else body).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": task.headers,
        "properties": {
            **task.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope)
