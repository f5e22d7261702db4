"""Recovery's pieces on fakeredis and pure data: settings, the lock, the inbox's requeue of stuck
events (receiver and sweeper), the ledger's index of active orders and open items, the rules, and
how the sweeper reads kombu's messages."""
from __future__ import annotations

import json
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from fulfillment.errors import ConfigError
from fulfillment.inbox import DUPLICATE, ENQUEUED, REQUEUED, Inbox
from fulfillment.ledger import ACTIVE, Ledger
from fulfillment.locks import Lock
from fulfillment.records import Order, OrderItem
from fulfillment.recovery import session_needs_fulfillment, unheld
from fulfillment.schemas import parse_session
from fulfillment.settings import RecoverySettings, load_settings
from messaging.contract import FULFILL_ITEM, PROCESS_EVENT, fulfill_task_id, task_message
from tests.support.processes import wait_until
from worker.schedule import beat_schedule
from worker.sweeper import UNACKED, held_tasks

T0 = 1_800_000_000.0
STUCK = 300.0
QUEUE = "events"


@pytest.fixture
def fake() -> Iterator[redis.Redis]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    client.close()


# --- settings -----------------------------------------------------------------------------------------

def test_recovery_defaults_find_a_lost_message_within_a_sweep_or_two() -> None:
    recovery = load_settings({}).recovery

    assert recovery == RecoverySettings()
    assert (recovery.reconcile_every, recovery.reconcile_window, recovery.sweep_every) == (600, 72 * 3600, 10)
    assert recovery.retention == 90 * 86_400
    # A message held unacked counts as held whoever holds it (a dead consumer's comes back within
    # seconds: worker/redelivery.py), so the threshold no longer waits for the visibility timeout.
    assert (recovery.stuck_after, recovery.payment_recheck) == (20, 3600)
    assert load_settings({"CROSSFILL_VISIBILITY_TIMEOUT": "60"}).recovery.stuck_after == 20
    assert load_settings({"CROSSFILL_STUCK_AFTER": "5m"}).recovery.stuck_after == 300


@pytest.mark.parametrize(("env", "name"), [
    ({"CROSSFILL_STUCK_AFTER": "4"}, "CROSSFILL_STUCK_AFTER"),
    ({"CROSSFILL_ITEM_LEASE": "2"}, "CROSSFILL_ITEM_LEASE"),
    ({"CROSSFILL_RECONCILE_WINDOW": "31d"}, "CROSSFILL_RECONCILE_WINDOW"),
    ({"CROSSFILL_RETENTION": "2d", "CROSSFILL_RECONCILE_WINDOW": "3d"}, "CROSSFILL_RECONCILE_WINDOW"),
    ({"CROSSFILL_RETENTION": "1d"}, "CROSSFILL_RECONCILE_WINDOW"),  # the 72 h default window no longer fits
    ({"CROSSFILL_RETENTION": "soon"}, "CROSSFILL_RETENTION"),
    ({"CROSSFILL_RECONCILE_EVERY": "0"}, "CROSSFILL_RECONCILE_EVERY"),
    ({"CROSSFILL_SWEEP_EVERY": "2h"}, "CROSSFILL_SWEEP_EVERY"),
])
def test_unusable_recovery_settings_name_their_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env)

    assert raised.value.name == name


def test_beat_schedules_reconcile_and_sweep_each_expiring_after_its_period() -> None:
    settings = load_settings({"CROSSFILL_RECONCILE_EVERY": "5m", "CROSSFILL_SWEEP_EVERY": "30"})

    schedule = beat_schedule(settings)

    assert {name: (entry["task"], entry["schedule"], entry["options"]["expires"]) for name, entry in schedule.items()} \
        == {"reconcile": ("reconcile", 300, 300), "sweep": ("sweep", 30, 30)}


# --- the lock -------------------------------------------------------------------------------------------

def test_the_lock_has_one_holder_and_only_the_holder_renews_or_releases_it(fake: redis.Redis) -> None:
    first, second = Lock(fake, "job", ttl_s=60), Lock(fake, "job", ttl_s=60)

    assert first.acquire() and not second.acquire()
    assert not second.release() and not second.renew()
    assert fake.exists(first.key)
    assert first.renew() and 0 < fake.pttl(first.key) <= 60_000
    assert first.release() and second.acquire()


def test_a_lock_left_by_a_dead_holder_expires(fake: redis.Redis) -> None:
    dead = Lock(fake, "job", ttl_s=0.001)
    assert dead.acquire()

    wait_until(lambda: not fake.exists(dead.key), timeout=5, what="the lock to expire")

    assert Lock(fake, "job", ttl_s=60).acquire()
    assert not dead.release()  # the next holder's lock is not its to release


# --- the inbox: stuck events ----------------------------------------------------------------------------

def record(inbox: Inbox, now: float, event_id: str = "evt_1") -> tuple[str, str]:
    return inbox.record(event_id, "checkout.session.completed", "cs_1", "{}", queue=QUEUE,
                        message=f"message {now}", now=now)


@pytest.mark.parametrize("status", ["enqueued", "processing"])
def test_a_delivery_of_an_event_stuck_in_flight_pushes_its_message_again(fake: redis.Redis, status: str) -> None:
    inbox = Inbox(fake, ttl_s=86_400, stuck_after_s=STUCK)
    record(inbox, T0)
    if status == "processing":
        fake.hset("crossfill:event:evt_1", mapping={"status": "processing", "processing_at": T0 + 10})
        fake.zrem("crossfill:inbox:enqueued", "evt_1")
        fake.zadd("crossfill:inbox:processing", {"evt_1": T0})
    moved = T0 + (10 if status == "processing" else 0)

    before = record(inbox, moved + STUCK - 1)
    after = record(inbox, moved + STUCK)

    assert before == (DUPLICATE, status)
    assert after == (REQUEUED, status)
    assert fake.lrange(QUEUE, 0, -1) == [f"message {moved + STUCK}", f"message {T0}"]
    fields = fake.hgetall("crossfill:event:evt_1")
    assert (fields["status"], float(fields["enqueued_at"]), fields["requeued"], fields["deliveries"]) \
        == ("enqueued", moved + STUCK, "1", "3")
    assert fake.zscore("crossfill:inbox:enqueued", "evt_1") == T0 and not fake.zscore("crossfill:inbox:processing", "evt_1")
    # Just requeued: the next delivery is a duplicate again until the threshold passes once more
    assert record(inbox, moved + STUCK + 1) == (DUPLICATE, "enqueued")


@pytest.mark.parametrize("status", ["processed", "failed", "ignored"])
def test_an_event_that_ended_is_never_requeued(fake: redis.Redis, status: str) -> None:
    inbox = Inbox(fake, ttl_s=86_400, stuck_after_s=STUCK)
    record(inbox, T0)
    fake.hset("crossfill:event:evt_1", "status", status)

    assert record(inbox, T0 + 10 * STUCK) == (DUPLICATE, status)
    assert inbox.requeue_if_stuck("evt_1", queue=QUEUE, message="m", stuck_after_s=STUCK, now=T0 + 10 * STUCK) is None
    assert fake.llen(QUEUE) == 1


def test_without_a_threshold_the_inbox_only_dedupes(fake: redis.Redis) -> None:
    inbox = Inbox(fake, ttl_s=86_400)
    assert record(inbox, T0) == (ENQUEUED, "enqueued")

    assert record(inbox, T0 + 10 ** 6) == (DUPLICATE, "enqueued")


def test_the_sweeper_finds_events_in_flight_since_the_threshold_and_requeues_them(fake: redis.Redis) -> None:
    inbox = Inbox(fake, ttl_s=10 ** 7)
    for number, received in enumerate([T0, T0 + 100, T0 + 500]):
        record(inbox, received, f"evt_{number}")
    inbox.move("evt_1", "processed")

    stale = inbox.in_flight_since(T0 + 400, limit=100)
    was = inbox.requeue_if_stuck("evt_0", queue=QUEUE, message="again", stuck_after_s=STUCK, now=T0 + STUCK)

    assert stale == ["evt_0"]  # evt_1 ended, evt_2 moved after the cut
    assert was == "enqueued" and fake.lindex(QUEUE, 0) == "again"
    assert inbox.in_flight_since(T0 + STUCK - 1, limit=100) == []  # requeued now: not stale any more


def test_known_tells_which_events_the_inbox_holds(fake: redis.Redis) -> None:
    inbox = Inbox(fake, ttl_s=86_400)
    record(inbox, T0, "evt_a")

    assert inbox.known(["evt_a", "evt_b"]) == [True, False]


# --- the ledger: active orders and open items ---------------------------------------------------------

ORDER = Order(session_id="cs_any", currency="usd")  # the ledger keys it by the session id it is given


def items(*ids: str) -> list[OrderItem]:
    return [OrderItem(id=item_id, product="prod_1") for item_id in ids]


def test_orders_waiting_on_items_or_money_are_indexed_until_they_end(fake: redis.Redis) -> None:
    ledger = Ledger(fake)
    ledger.open_order("cs_1", ORDER, items("li_1"))
    ledger.mark_order("cs_2", "awaiting_payment", ORDER)
    ledger.mark_order("cs_3", "expired", ORDER)

    assert set(fake.zrange(ACTIVE, 0, -1)) == {"cs_1", "cs_2"}
    assert ledger.unchanged_since(float("inf"), limit=10) == [("cs_1", "fulfilling"), ("cs_2", "awaiting_payment")]

    claim = ledger.claim_item("cs_1", "li_1", lease_s=60)
    ledger.record_result("cs_1", "li_1", claim.token, {"ok": True})
    ledger.mark_order("cs_2", "expired", ORDER, allowed_from=["awaiting_payment"])

    assert fake.zcard(ACTIVE) == 0


def test_a_checked_order_is_looked_at_again_only_after_the_threshold(fake: redis.Redis) -> None:
    ledger = Ledger(fake)
    ledger.open_order("cs_1", ORDER, items("li_1"))
    opened = float(fake.zscore(ACTIVE, "cs_1") or 0)

    ledger.touch("cs_1", now=opened + 1000)
    ledger.touch("cs_unknown", now=opened + 1000)

    assert ledger.unchanged_since(opened + 999, limit=10) == []
    assert ledger.unchanged_since(opened + 1000, limit=10) == [("cs_1", "fulfilling")]
    assert fake.zscore(ACTIVE, "cs_unknown") is None


def test_an_expired_order_leaves_the_index_when_the_sweeper_meets_it(fake: redis.Redis) -> None:
    ledger = Ledger(fake)
    ledger.open_order("cs_1", ORDER, items("li_1"))
    fake.delete("crossfill:order:cs_1")

    assert ledger.unchanged_since(float("inf"), limit=10) == []
    assert fake.zcard(ACTIVE) == 0


def test_open_items_are_pending_or_claimed_under_an_expired_lease(fake: redis.Redis) -> None:
    ledger = Ledger(fake)
    ledger.open_order("cs_1", ORDER, items("li_pending", "li_leased", "li_expired", "li_done"))
    ledger.claim_item("cs_1", "li_leased", lease_s=3600)
    ledger.claim_item("cs_1", "li_expired", lease_s=0.001)
    done = ledger.claim_item("cs_1", "li_done", lease_s=60)
    ledger.record_result("cs_1", "li_done", done.token, {})

    assert ledger.open_items("cs_1", now=float(fake.time()[0]) + 1) == ["li_pending", "li_expired"]
    assert ledger.statuses(["cs_1", "cs_none"]) == ["fulfilling", None]


# --- rules -------------------------------------------------------------------------------------------------

def session(payment_status: str) -> object:
    return parse_session({"id": "cs_1", "object": "checkout.session", "mode": "payment", "status": "complete",
                          "payment_status": payment_status, "currency": "usd", "amount_total": 100})


@pytest.mark.parametrize(("payment_status", "order_status", "needed"), [
    ("paid", None, True),
    ("no_payment_required", None, True),
    ("paid", "awaiting_payment", True),
    ("paid", "fulfilling", False),
    ("paid", "fulfilled", False),
    ("paid", "partially_failed", False),
    ("unpaid", None, False),
    ("unpaid", "awaiting_payment", False),
    ("paid_in_the_future", None, False),  # an unknown payment status is not paid
])
def test_a_session_needs_fulfilling_when_paid_with_no_order_under_way(payment_status: str, order_status: str | None,
                                                                       needed: bool) -> None:
    assert session_needs_fulfillment(session(payment_status), order_status) is needed  # type: ignore[arg-type]


def test_unheld_keeps_the_tasks_no_message_carries_in_order() -> None:
    assert unheld([("a", "1"), ("b", "2"), ("a", "3")], {("b", "2")}) == [("a", "1"), ("a", "3")]


# --- the sweeper reads kombu's messages -----------------------------------------------------------------

def test_held_tasks_reads_queued_and_unacked_messages_of_both_tasks(fake: redis.Redis) -> None:
    fake.lpush("events", task_message(PROCESS_EVENT, ["evt_queued"]))
    fake.lpush("fulfillment\x06\x166", task_message(FULFILL_ITEM, ["cs_1", "li_1"], task_id=fulfill_task_id("cs_1", "li_1")))
    unacked = json.loads(task_message(PROCESS_EVENT, ["evt_unacked"]))
    fake.hset(UNACKED, "tag-1", json.dumps([unacked, "", "events"]))
    fake.lpush("events", "not json")
    fake.hset(UNACKED, "tag-2", json.dumps(["not a message", "", "events"]))

    assert held_tasks(fake) == {(PROCESS_EVENT, "evt_queued"), (PROCESS_EVENT, "evt_unacked"),
                                (FULFILL_ITEM, "cs_1", "li_1")}


def test_held_tasks_pages_through_long_queues(fake: redis.Redis) -> None:
    fake.lpush("events", *(task_message(PROCESS_EVENT, [f"evt_{n}"]) for n in range(1203)))

    assert len(held_tasks(fake)) == 1203


# --- retention ------------------------------------------------------------------------------------------

def test_an_order_and_its_items_expire_the_retention_after_the_order_was_created(fake: redis.Redis) -> None:
    ledger = Ledger(fake, ttl_s=3600)
    ledger.open_order("cs_1", ORDER, items("li_1", "li_2"))
    ledger.mark_order("cs_2", "awaiting_payment", ORDER)

    for key in ("crossfill:order:cs_1", "crossfill:order:cs_1:items", "crossfill:item:cs_1:li_1",
                "crossfill:item:cs_1:li_2", "crossfill:order:cs_2"):
        assert 3500 < fake.ttl(key) <= 3600, key
    claim = ledger.claim_item("cs_1", "li_1", lease_s=60)
    ledger.record_result("cs_1", "li_1", claim.token, {"ok": True})
    assert 3500 < fake.ttl("crossfill:item:cs_1:li_1") <= 3600  # later writes keep the deadline


def test_the_order_indexes_forget_orders_older_than_the_retention(fake: redis.Redis) -> None:
    ledger = Ledger(fake, ttl_s=3600)
    old = float(fake.time()[0]) - 7200
    fake.zadd("crossfill:orders:by_created", {"cs_old": old})
    fake.sadd("crossfill:orders:fulfilled", "cs_old")
    fake.sadd("crossfill:orders:to_report", "cs_old")
    fake.zadd(ACTIVE, {"cs_old": old})

    ledger.open_order("cs_new", ORDER, items("li_1"))

    assert fake.zrange("crossfill:orders:by_created", 0, -1) == ["cs_new"]
    assert not fake.sismember("crossfill:orders:fulfilled", "cs_old")
    assert not fake.sismember("crossfill:orders:to_report", "cs_old")
    assert fake.zrange(ACTIVE, 0, -1) == ["cs_new"]
    assert ledger.counts()["fulfilled"] == 0


def test_inbox_events_expire_after_the_retention(fake: redis.Redis) -> None:
    inbox = Inbox(fake, ttl_s=load_settings({"CROSSFILL_RETENTION": "10d"}).recovery.retention)
    inbox.record("evt_1", "checkout.session.completed", "cs_1", "{}", queue=QUEUE, message="m")

    assert 9 * 86_400 < fake.ttl("crossfill:event:evt_1") <= 10 * 86_400
