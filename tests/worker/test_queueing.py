"""The worker's queue order: fulfillment first, whatever order the queues are given in."""
from __future__ import annotations

from kombu.utils.scheduling import cycle_by_name

from messaging.contract import EVENTS_QUEUE, FULFILLMENT_QUEUE
from worker.queueing import QUEUE_ORDER, FulfillmentFirst


def test_fulfillment_comes_first_in_any_given_order() -> None:
    for given in ([EVENTS_QUEUE, FULFILLMENT_QUEUE], [FULFILLMENT_QUEUE, EVENTS_QUEUE]):
        cycle = FulfillmentFirst()
        cycle.update(given)

        assert cycle.consume(2) == [FULFILLMENT_QUEUE, EVENTS_QUEUE]


def test_the_order_does_not_rotate_after_a_message() -> None:
    cycle = FulfillmentFirst()
    cycle.update([EVENTS_QUEUE, FULFILLMENT_QUEUE])

    cycle.rotate(FULFILLMENT_QUEUE)

    assert cycle.consume(2) == [FULFILLMENT_QUEUE, EVENTS_QUEUE]


def test_other_queues_keep_their_order_after_fulfillment() -> None:
    cycle = FulfillmentFirst()
    cycle.update(["b", EVENTS_QUEUE, "a", FULFILLMENT_QUEUE])

    assert cycle.consume(4) == [FULFILLMENT_QUEUE, "b", EVENTS_QUEUE, "a"]


def test_kombu_resolves_the_configured_name() -> None:
    assert cycle_by_name(QUEUE_ORDER) is FulfillmentFirst
