"""The Celery app, configured for at-least-once delivery on Redis."""
from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from fulfillment import defaults
from fulfillment.settings import Settings
from fulfillment.store import is_sentinel
from messaging.contract import QUEUES, TASK_QUEUES
from ops.runtime import Runtime
from worker import schedule, tasks
from worker.broker import OutageTolerantTask, harden_kombu_redis
from worker.queueing import QUEUE_ORDER


class CrossfillCelery(Celery):
    """A Celery app that carries crossfill's :class:`Runtime`."""

    runtime: Runtime


def make_celery(settings: Settings) -> CrossfillCelery:
    """Build the Celery app for *settings*: broker and results on Redis, late acks, JSON only."""
    url = settings.resolved_redis_url
    # Under Sentinel (sentinel://…;sentinel://…) kombu's and the result backend's pools ask the sentinels
    # for this master on every new connection, so a worker follows a failover by itself.
    sentinel = {"master_name": settings.redis.sentinel_master} if is_sentinel(url) else {}
    harden_kombu_redis()  # a worker survives its Redis being killed under load (worker/broker.py)
    app = CrossfillCelery("crossfill", set_as_current=False, task_cls=OutageTolerantTask)
    app.runtime = Runtime(settings)
    app.conf.update(
        broker_url=url,
        result_backend=url,
        result_backend_transport_options=dict(sentinel),
        broker_connection_retry_on_startup=True,
        # Reconnect for as long as Redis is away (Celery gives up after 100 attempts, ~50 min, by default):
        # Stripe retries for days, and a worker that gave up is one more thing to restart.
        broker_connection_max_retries=None,
        broker_transport_options={
            "socket_connect_timeout": defaults.REDIS_CONNECT_TIMEOUT_S,
            "socket_timeout": defaults.REDIS_SOCKET_TIMEOUT_S,
            # A task whose worker died is redelivered once the visibility timeout has passed AND a
            # worker's periodic sweep runs (every interval x throttle seconds): keep the sweep short.
            "visibility_timeout": settings.retry.visibility_timeout,
            "unacked_restore_interval": settings.retry.restore_interval,
            "unacked_restore_throttle": 1,
            # Items of orders already read before new events (worker/queueing.py: measured under a flash sale).
            "queue_order_strategy": QUEUE_ORDER,
            **sentinel,
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
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        task_default_queue=QUEUES[0],
        task_routes={task: {"queue": queue, "routing_key": queue} for task, queue in TASK_QUEUES.items()},
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=False,
        # Task events (Flower's live view) cost three extra messages per task; `celery events` or
        # Flower can switch them on at run time (`celery control enable_events`).
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    tasks.register(app)
    schedule.register(app, settings)  # reconcile and sweep, and beat's schedule
    return app
