"""Stripe API calls per order on the whole pipeline, as the simulator counts them and /metrics shows them.

A module of its own, so that its stack has served nothing else when the requests are counted.
"""
from __future__ import annotations

import pytest

from fulfillment.stats import STRIPE_API_CALLS, STRIPE_ORDERS_READ, Stats
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

#: The single-retrieve path is counted here (events that wait are batched: tests/fulfillment/test_batching.py).
STACK_EXTRA_ENV = {"CROSSFILL_BATCH_READS": "0"}

SESSION = "GET /v1/checkout/sessions/{id}"
LINE_ITEMS = "GET /v1/checkout/sessions/{id}/line_items"


def test_an_order_is_read_with_one_request(fresh: Stack) -> None:
    # Given ten buyers, half of whom add the cross-sell, and one order of 14 items
    fresh.sim.delete("/sim/stats")
    sessions = [fresh.shop.buy(cross_sell=number % 2 == 0) for number in range(10)]
    sessions.append(fresh.shop.buy(extra_items=13))

    for session_id in sessions:
        fresh.wait_order(session_id, "fulfilled")

    # Then the simulator served one session read per order, and a line item list only for the large one
    endpoints = fresh.sim.get("/sim/stats")["endpoints"]
    served = {name: counts["requests"] for name, counts in endpoints.items() if name in (SESSION, LINE_ITEMS)}
    assert served == {SESSION: 11, LINE_ITEMS: 1}
    stats = Stats(fresh.redis.client())
    assert stats.read(STRIPE_API_CALLS) == served and stats.total(STRIPE_ORDERS_READ) == 11
    metrics = fresh.metrics()
    assert f'crossfill_stripe_api_calls_total{{endpoint="{SESSION}"}} 11.0' in metrics
    print(f"\nAPI calls per order on the simulator: {sum(served.values()) / len(sessions):.3f} ({served})")
