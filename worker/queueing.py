"""The order a worker takes its queues in: the items of orders already read before new events.

kombu's Redis transport takes the next message with one BRPOP over a worker's queues and, by
default, rotates them after each message (round robin). Under Stripe's rate limit that couples the
two queues: every event task waits for its API slot (25 session reads/s), and round robin then takes
one item message per event message, so items are fulfilled at the pace of the reads (about 25/s)
while each order adds three. Measured with ``bench/flash_sale.py`` (3,000 orders posted at 300/s,
live limits): with round robin the fulfillment queue grew to 6,000 messages and items waited for the
last event, payment to fulfilled p50 124 s; with ``fulfillment`` first, the queue stayed near empty
and p50 was 59 s, the reads at the same 25/s.

Items come only from events, so taking ``fulfillment`` first cannot starve ``events`` for longer than
the items already read take to run.
"""
from __future__ import annotations

from kombu.utils.scheduling import priority_cycle

from messaging.contract import FULFILLMENT_QUEUE

__all__ = ["QUEUE_ORDER", "FulfillmentFirst"]


class FulfillmentFirst(priority_cycle):
    """kombu's queue cycle: ``fulfillment`` first, the others after it in their given order, no rotation."""

    def consume(self, n: int) -> list[str]:
        """The queues of the next BRPOP, in the order Redis should look at them."""
        return sorted(self.items[:n], key=lambda queue: queue != FULFILLMENT_QUEUE)


#: The Redis transport's ``queue_order_strategy`` (kombu resolves the dotted name).
QUEUE_ORDER = f"{__name__}:FulfillmentFirst"
