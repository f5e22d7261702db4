"""messaging.dispatch: every act that queues work records and pushes in one Redis call, or does neither.

On fakeredis (Lua through lupa). The messages are checked by what a Celery worker reads from them:
the task name, its arguments and its id (``test_task_message.py`` holds the whole format equal to
``send_task``'s).
"""
from __future__ import annotations

import base64
import json
from typing import Any

import fakeredis
import pytest

from fulfillment.errors import StoreUnavailable
from fulfillment.inbox import DUPLICATE, ENQUEUED, Inbox
from fulfillment.ledger import Ledger
from fulfillment.records import Order, OrderItem
from messaging import dispatch
from messaging.contract import EVENTS_QUEUE, FULFILLMENT_QUEUE
from tests.support.fulfillment_fixtures import fake_redis

SID = "cs_test_dispatch"


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fake_redis(server)


@pytest.fixture
def inbox(client: fakeredis.FakeRedis) -> Inbox:
    return Inbox(client)


@pytest.fixture
def ledger(client: fakeredis.FakeRedis) -> Ledger:
    return Ledger(client)


def queued(client: fakeredis.FakeRedis, queue: str) -> list[tuple[str, list[Any], str]]:
    """(task, args, task id) of each message on *queue*, oldest first."""
    found = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        found.append((envelope["headers"]["task"], args, envelope["headers"]["id"]))
    return found


def test_a_new_event_is_recorded_and_queued_once(inbox: Inbox, client: fakeredis.FakeRedis) -> None:
    assert dispatch.enqueue_event(inbox, "evt_1", "checkout.session.completed", SID, "{}")[0] == ENQUEUED
    assert dispatch.enqueue_event(inbox, "evt_1", "checkout.session.completed", SID, "{}")[0] == DUPLICATE

    assert [(task, args) for task, args, _ in queued(client, EVENTS_QUEUE)] == [("process_event", ["evt_1"])]


def test_a_replayed_event_is_enqueued_again_with_its_message(inbox: Inbox, client: fakeredis.FakeRedis) -> None:
    # Given an event that was processed
    dispatch.enqueue_event(inbox, "evt_1", "checkout.session.completed", SID, "{}")
    client.delete(EVENTS_QUEUE)
    inbox.move("evt_1", "processed")

    # When it is replayed
    was = dispatch.replay_event(inbox, "evt_1")

    # Then its status and its message changed together
    assert was == "processed"
    assert inbox.get("evt_1").status == "enqueued"  # type: ignore[union-attr]
    assert [(task, args) for task, args, _ in queued(client, EVENTS_QUEUE)] == [("process_event", ["evt_1"])]


def test_an_ignored_event_is_never_replayed(inbox: Inbox, client: fakeredis.FakeRedis) -> None:
    inbox.record_ignored("evt_other", "customer.created")

    assert dispatch.replay_event(inbox, "evt_other") == "ignored"
    assert inbox.get("evt_other").status == "ignored"  # type: ignore[union-attr]
    assert client.llen(EVENTS_QUEUE) == 0


def test_an_unknown_event_is_not_replayed(inbox: Inbox, client: fakeredis.FakeRedis) -> None:
    assert dispatch.replay_event(inbox, "evt_nothing") is None
    assert client.llen(EVENTS_QUEUE) == 0


def test_items_are_dispatched_under_their_stable_task_ids(client: fakeredis.FakeRedis) -> None:
    dispatch.dispatch_items(client, SID, ["li_1", "li_2"])
    dispatch.dispatch_items(client, SID, [])

    assert queued(client, FULFILLMENT_QUEUE) == [
        ("fulfill_item", [SID, "li_1"], f"fulfill:{SID}:li_1"), ("fulfill_item", [SID, "li_2"], f"fulfill:{SID}:li_2")]


def _failed_item(ledger: Ledger, status: str) -> None:
    ledger.open_order(SID, Order(session_id=SID, mode="payment", payment_status="paid"),
                     [OrderItem(id="li_1", product="prod_pro", quantity=1, handler="log")])
    claim = ledger.claim_item(SID, "li_1", lease_s=60)
    if status == "failed":
        ledger.record_failure(SID, "li_1", claim.token, "PermanentError: 400")
    else:
        ledger.record_result(SID, "li_1", claim.token, {"ok": True})


def test_a_failed_item_is_reopened_and_queued_in_one_call(ledger: Ledger, client: fakeredis.FakeRedis) -> None:
    _failed_item(ledger, "failed")

    assert dispatch.replay_item(ledger, SID, "li_1") is True

    assert ledger.item(SID, "li_1")["status"] == "pending"  # type: ignore[index]
    assert queued(client, FULFILLMENT_QUEUE) == [("fulfill_item", [SID, "li_1"], f"fulfill:{SID}:li_1")]


def test_a_done_item_is_not_queued_again(ledger: Ledger, client: fakeredis.FakeRedis) -> None:
    _failed_item(ledger, "done")

    assert dispatch.replay_item(ledger, SID, "li_1") is False
    assert client.llen(FULFILLMENT_QUEUE) == 0


def test_a_reconcile_request_is_queued_under_the_id_it_returns(client: fakeredis.FakeRedis) -> None:
    task_id = dispatch.request_reconcile(client)

    assert queued(client, EVENTS_QUEUE) == [("reconcile", [], task_id)]


def test_redis_down_queues_nothing_and_says_so(server: fakeredis.FakeServer, inbox: Inbox, ledger: Ledger,
                                               client: fakeredis.FakeRedis) -> None:
    server.connected = False

    for act in (lambda: dispatch.enqueue_event(inbox, "evt_1", "checkout.session.completed", SID, "{}"),
                lambda: dispatch.replay_event(inbox, "evt_1"), lambda: dispatch.replay_item(ledger, SID, "li_1"),
                lambda: dispatch.dispatch_items(client, SID, ["li_1"]), lambda: dispatch.request_reconcile(client)):
        with pytest.raises(StoreUnavailable):
            act()
