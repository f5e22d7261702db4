"""A worker's consumer takes the items already queued before new events (worker/queueing.py), on a real Redis."""
from __future__ import annotations

from typing import Any

import pytest
from kombu import Connection, Exchange, Message, Queue

from messaging.contract import EVENTS_QUEUE, FULFILLMENT_QUEUE
from worker.app import make_celery
from worker.queueing import QUEUE_ORDER

pytestmark = pytest.mark.integration


def consumed_order(url: str, strategy: str) -> list[str]:
    """Queue two events, then two items; return the queues of the four messages as a consumer takes them."""
    queues = {name: Queue(name, Exchange(name), routing_key=name) for name in (EVENTS_QUEUE, FULFILLMENT_QUEUE)}
    got: list[str] = []

    def take(body: dict[str, Any], message: Message) -> None:
        got.append(body["queue"])
        message.ack()

    with Connection(url, transport_options={"queue_order_strategy": strategy}) as conn:
        producer = conn.Producer()
        for name in (EVENTS_QUEUE, EVENTS_QUEUE, FULFILLMENT_QUEUE, FULFILLMENT_QUEUE):
            producer.publish({"queue": name}, exchange=queues[name].exchange, routing_key=name,
                             declare=[queues[name]])
        # The CLI lists events first (--queues events,fulfillment).
        with conn.Consumer([queues[EVENTS_QUEUE], queues[FULFILLMENT_QUEUE]], callbacks=[take]):
            while len(got) < 4:
                conn.drain_events(timeout=10)
    return got


def test_items_are_taken_before_new_events(redis_server: Any) -> None:
    assert consumed_order(redis_server.url, QUEUE_ORDER) == [FULFILLMENT_QUEUE] * 2 + [EVENTS_QUEUE] * 2


def test_round_robin_would_interleave_them(redis_server: Any) -> None:
    # kombu's default, what crossfill used before: one item per event, whichever waits longer.
    order = consumed_order(redis_server.url, "round_robin")

    assert order[:2] != [FULFILLMENT_QUEUE] * 2


def test_the_worker_app_uses_that_order(settings: Any) -> None:
    app = make_celery(settings)

    assert app.conf.broker_transport_options["queue_order_strategy"] == QUEUE_ORDER
