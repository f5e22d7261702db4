"""ops.service: what the CLI and the console ask, answered over a Runtime with no Celery app (fakeredis)."""
from __future__ import annotations

import fakeredis
import pytest

from fulfillment.records import Order, OrderItem
from fulfillment.settings import Settings
from messaging import dispatch
from messaging.contract import EVENTS_QUEUE, FULFILLMENT_QUEUE, event_dead_letter_id, fulfill_task_id
from ops import service
from ops.runtime import Runtime
from tests.support.fulfillment_fixtures import fake_redis

SID = "cs_test_ops"


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fake_redis()


@pytest.fixture
def runtime(client: fakeredis.FakeRedis) -> Runtime:
    opened = Runtime(Settings(redis_url="redis://127.0.0.1:1/0"))
    opened.__dict__["redis"] = client  # the stores open on this client instead of connecting
    return opened


def test_status_counts_queues_letters_inbox_and_orders(runtime: Runtime) -> None:
    dispatch.enqueue_event(runtime.inbox, "evt_1", "checkout.session.completed", SID, "{}")

    report = service.status(runtime, workers=["b@host", "a@host"])

    assert report["queues"] == {EVENTS_QUEUE: 1, FULFILLMENT_QUEUE: 0}
    assert report["inbox"]["enqueued"] == 1 and report["dead_letters"] == 0
    assert report["workers"] == ["a@host", "b@host"]


def test_replaying_a_dead_event_queues_it_and_files_the_letter_away(runtime: Runtime,
                                                                    client: fakeredis.FakeRedis) -> None:
    dispatch.enqueue_event(runtime.inbox, "evt_1", "checkout.session.completed", SID, "{}")
    client.delete(EVENTS_QUEUE)
    runtime.inbox.move("evt_1", "failed")
    letter = runtime.dead_letters.add(event_dead_letter_id("evt_1"), "process_event", ["evt_1"], "boom",
                                      reason="exhausted", attempts=8)

    assert service.replay_dead_letter(runtime, letter) == service.REPLAYED

    assert client.llen(EVENTS_QUEUE) == 1 and runtime.dead_letters.count() == 0


def test_replaying_a_done_item_queues_nothing(runtime: Runtime, client: fakeredis.FakeRedis) -> None:
    runtime.ledger.open_order(SID, Order(session_id=SID, mode="payment", payment_status="paid"),
                             [OrderItem(id="li_1", product="prod_pro", quantity=1, handler="log")])
    claim = runtime.ledger.claim_item(SID, "li_1", lease_s=60)
    runtime.ledger.record_result(SID, "li_1", claim.token, {"ok": True})
    letter = runtime.dead_letters.add(fulfill_task_id(SID, "li_1"), "fulfill_item", [SID, "li_1"], "late",
                                      reason="exhausted", attempts=8)

    assert service.replay_dead_letter(runtime, letter) == service.ALREADY_DONE
    assert client.llen(FULFILLMENT_QUEUE) == 0 and runtime.dead_letters.count() == 0


def test_an_ignored_event_is_refused_and_its_letter_kept(runtime: Runtime, client: fakeredis.FakeRedis) -> None:
    runtime.inbox.record_ignored("evt_live", "checkout.session.completed", reason="livemode_mismatch")
    runtime.dead_letters.add(event_dead_letter_id("evt_live"), "process_event", ["evt_live"], "x",
                             reason="permanent", attempts=1)

    assert service.replay_event(runtime, "evt_live") == "ignored"
    assert client.llen(EVENTS_QUEUE) == 0 and runtime.dead_letters.count() == 1
    assert service.replay_event(runtime, "evt_unknown") is None


def test_a_dead_event_no_longer_in_the_inbox_is_not_reported_replayed(runtime: Runtime,
                                                                     client: fakeredis.FakeRedis) -> None:
    letter = runtime.dead_letters.add(event_dead_letter_id("evt_gone"), "process_event", ["evt_gone"], "boom",
                                      reason="exhausted", attempts=8)

    assert service.replay_dead_letter(runtime, letter) == service.NOT_IN_INBOX
    assert client.llen(EVENTS_QUEUE) == 0 and runtime.dead_letters.count() == 1
