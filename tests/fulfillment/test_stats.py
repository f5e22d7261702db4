"""The workers' counters in Redis, and /metrics showing them (webhooks.metrics.StateCollector)."""
from __future__ import annotations

from fulfillment.stats import LIVEMODE_MISMATCH, STRIPE_API_CALLS, STRIPE_ORDERS_READ, UNKNOWN_VALUES, Stats
from tests.support.fulfillment_fixtures import fake_redis
from webhooks.metrics import ReceiverMetrics, StateCollector


def test_counters_add_up_by_label_across_clients() -> None:
    client = fake_redis()
    one, other = Stats(client), Stats(client)

    one.incr(STRIPE_API_CALLS, "GET /v1/checkout/sessions/{id}")
    other.incr(STRIPE_API_CALLS, "GET /v1/checkout/sessions/{id}", 2)
    other.incr(STRIPE_API_CALLS, "GET /v1/checkout/sessions/{id}/line_items")
    one.incr(STRIPE_ORDERS_READ)

    assert one.read(STRIPE_API_CALLS) == {"GET /v1/checkout/sessions/{id}": 3,
                                          "GET /v1/checkout/sessions/{id}/line_items": 1}
    assert (one.total(STRIPE_API_CALLS), one.read(STRIPE_ORDERS_READ)) == (4, {"": 1})
    assert one.read(UNKNOWN_VALUES) == {}


def test_metrics_show_the_counters() -> None:
    client = fake_redis()
    stats = Stats(client)
    stats.incr(STRIPE_API_CALLS, "GET /v1/checkout/sessions/{id}", 5)
    stats.incr(STRIPE_ORDERS_READ, amount=5)
    stats.incr(UNKNOWN_VALUES, "payment_status")
    stats.incr(LIVEMODE_MISMATCH, "receiver", 2)

    text = ReceiverMetrics(StateCollector(client, ("events",))).render().decode()

    assert 'crossfill_stripe_api_calls_total{endpoint="GET /v1/checkout/sessions/{id}"} 5.0' in text
    assert "crossfill_stripe_orders_read_total 5.0" in text
    assert 'crossfill_unknown_values_total{field="payment_status"} 1.0' in text
    assert 'crossfill_livemode_mismatch_total{where="receiver"} 2.0' in text
