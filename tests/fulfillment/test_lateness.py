"""Lateness, read from Redis: the lag of items done (once each), the oldest paid order not done, the
oldest waiting message, and the event time the lag counts from."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from fulfillment import lateness
from fulfillment.inbox import InboxEvent
from fulfillment.ledger import UNFULFILLED, Ledger
from fulfillment.records import Order, OrderItem
from messaging.dispatch import dispatch_items, item_message


@pytest.fixture
def fake() -> Iterator[redis.Redis]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    client.close()


def fulfil(ledger: Ledger, session_id: str, line_item_id: str) -> bool:
    claim = ledger.claim_item(session_id, line_item_id, lease_s=30)
    return ledger.record_result(session_id, line_item_id, claim.token, {"ok": True})


def test_each_item_done_counts_its_lag_once_from_when_it_was_paid(fake: redis.Redis) -> None:
    ledger = Ledger(fake)
    ledger.open_order("cs_1", Order(session_id="cs_1"), [OrderItem(id="li_1"), OrderItem(id="li_2")], paid_at=time.time() - 45)
    ledger.open_order("cs_1", Order(session_id="cs_1"), [OrderItem(id="li_1"), OrderItem(id="li_2")], paid_at=time.time())  # a later event: first one kept

    assert fulfil(ledger, "cs_1", "li_1") and fulfil(ledger, "cs_1", "li_2")
    assert ledger.claim_item("cs_1", "li_1", lease_s=30).outcome == "done"  # a redelivery: no second count

    histogram = lateness.lag_histogram(fake)
    assert histogram.count == 2 and 90 <= histogram.total < 95
    assert dict(histogram.cumulative())["30"] == 0 and dict(histogram.cumulative())["60"] == 2
    assert histogram.quantile(0.5) == pytest.approx(45.0)
    assert lateness.recent_lag(fake).count == 2


def test_a_failed_item_is_no_lag_and_an_order_without_a_paid_time_is_left_out(fake: redis.Redis) -> None:
    ledger = Ledger(fake)
    ledger.open_order("cs_1", Order(session_id="cs_1"), [OrderItem(id="li_1")], paid_at=time.time() - 5)
    claim = ledger.claim_item("cs_1", "li_1", lease_s=30)
    ledger.record_failure("cs_1", "li_1", claim.token, "PermanentError: 400")

    assert lateness.lag_histogram(fake).count == 0
    assert lateness.recent_lag(fake).quantile(0.99) is None


def test_the_oldest_unfulfilled_is_the_first_paid_and_settled_orders_leave(fake: redis.Redis) -> None:
    ledger = Ledger(fake)
    ledger.open_order("cs_old", Order(session_id="cs_old"), [OrderItem(id="li_1")], paid_at=time.time() - 600)
    ledger.open_order("cs_new", Order(session_id="cs_new"), [OrderItem(id="li_1")], paid_at=time.time() - 10)

    oldest = lateness.oldest_unfulfilled(fake)
    assert oldest is not None and oldest.session_id == "cs_old" and 599 < oldest.age(time.time()) < 700

    fulfil(ledger, "cs_old", "li_1")
    oldest = lateness.oldest_unfulfilled(fake)
    assert oldest is not None and oldest.session_id == "cs_new"
    summary = lateness.summary(fake)
    assert summary["oldest_unfulfilled"]["session_id"] == "cs_new" and not summary["oldest_unfulfilled"]["late"]

    fulfil(ledger, "cs_new", "li_1")
    assert lateness.oldest_unfulfilled(fake) is None


def test_a_stale_index_entry_heals_itself(fake: redis.Redis) -> None:
    # Given an entry whose order is gone (expired), older than a real one
    fake.zadd(UNFULFILLED, {"cs_gone": time.time() - 9999})
    Ledger(fake).open_order("cs_1", Order(session_id="cs_1"), [OrderItem(id="li_1")], paid_at=time.time() - 60)

    oldest = lateness.oldest_unfulfilled(fake)

    assert oldest is not None and oldest.session_id == "cs_1"
    assert fake.zscore(UNFULFILLED, "cs_gone") is None


def test_the_oldest_waiting_message_is_the_one_taken_next(fake: redis.Redis) -> None:
    dispatch_items(fake, "cs_1", ["li_1"])  # queued first: BRPOP takes it next
    time.sleep(0.2)
    dispatch_items(fake, "cs_1", ["li_2"])
    fake.rpush("fulfillment", json.dumps({"properties": {}}))  # a message Celery built itself: says nothing

    ages = lateness.oldest_waiting(fake, ("events", "fulfillment"))

    assert ages["events"] == 0.0
    assert 0.2 <= ages["fulfillment"] < 10
    assert lateness.sent_at(item_message("cs_1", "li_1")) == pytest.approx(time.time(), abs=5)


@pytest.mark.parametrize(("body", "created"), [
    ('{"created": 1700000000}', 1_700_000_000.0),
    ('{"created": "2023-11-14T22:13:20Z"}', 1_700_000_000.0),  # a thin event's RFC 3339
    ('{"created": "yesterday"}', None),
    ('{"created": true}', None),
    ('{}', None),
    ("", None),
])
def test_the_event_time_is_read_tolerantly(body: str, created: float | None) -> None:
    event = InboxEvent(id="evt_1", type="checkout.session.completed", session_id="cs_1", status="enqueued",
                       body=body, received_at=0.0, deliveries=1)

    assert event.created == created
