"""Recovery on real processes: reconciliation from the Stripe API (the simulator), the sweeper, beat.

Webhooks the simulator drops (its webhook-drop fault at 100 %) never reach crossfill; `crossfill
reconcile` and then beat find them in the Events and Sessions lists and fulfil every item once. A
message removed from the queue by hand (as kombu loses one between BRPOP and its unacked record) is
found by the sweeper; a webhook redelivered for such a stuck event enqueues it again.
"""
from __future__ import annotations

import json
import time
from typing import Any

from fulfillment.liveness import RECONCILE_LAST_SUCCESS
from fulfillment.settings import load_settings
from fulfillment.stats import Stats
from tests.support.processes import Proc, wait_until
from tests.support.stack import Stack

STUCK_AFTER_S = 16  #: the lowest allowed: visibility timeout 10 + restore interval 1 + margin 5
#: The stack's own settings: a short stuck threshold, so the sweeper acts within the test.
# Each event read alone: a batch would take up an event whose message was lost as soon as another
# event of its account is processed, and these tests are about the sweeper and reconciliation.
STACK_EXTRA_ENV = {"CROSSFILL_STUCK_AFTER": str(STUCK_AFTER_S), "CROSSFILL_BATCH_READS": "0"}


def settle_deliveries(stack: Stack, session_ids: list[str]) -> list[dict[str, Any]]:
    """Wait until no delivery of the sessions' events is pending (sent, failed or dropped); their events."""
    events: list[dict[str, Any]] = []

    def settled() -> bool:
        events[:] = [event for sid in session_ids for event in stack.shop.events_of(sid)]
        return bool(events) and all(stack.sim.get(f"/v1/events/{event['id']}")["pending_webhooks"] == 0
                                    for event in events)

    wait_until(settled, timeout=30, what="the simulator to settle its deliveries", interval=0.2)
    return events


def in_inbox(stack: Stack, event_id: str) -> bool:
    return bool(stack.redis.client().exists(f"crossfill:event:{event_id}"))


def reconcile(stack: Stack, *args: str) -> dict[str, Any]:
    result = stack.cli("reconcile", "--json", *args)
    assert result.returncode == 0, result.stderr + result.stdout
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def assert_fulfilled_once(stack: Stack, session_ids: list[str], timeout: float = 60) -> None:
    for sid in session_ids:
        stack.wait_order(sid, "fulfilled", timeout=timeout)
        keys = stack.keys_of(sid)
        assert keys and [stack.target.calls[key] for key in keys] == [1] * len(keys), sid


def lose_queued_messages(stack: Stack, queue: str) -> int:
    """Delete every message waiting in *queue*: what a worker killed between BRPOP and its unacked
    record leaves behind (the message gone, the inbox or ledger still saying it is on its way)."""
    client = stack.redis.client()
    lost = int(client.llen(queue))
    client.delete(queue)
    return lost


def test_reconcile_recovers_every_order_whose_webhooks_were_all_dropped(fresh: Stack) -> None:
    # Given every webhook delivery dropped on the way (never retried, as if lost)
    fresh.sim.post("/sim/faults", {"webhook_drop_rate": "1"})
    sessions = [fresh.shop.buy(cross_sell=True), fresh.shop.buy(), fresh.shop.buy(extra_items=2)]
    events = settle_deliveries(fresh, sessions)
    assert not any(in_inbox(fresh, event["id"]) for event in events)
    event_ids = {event["id"] for event in events}

    # When reconcile runs dry, then for real, then again
    dry = reconcile(fresh, "--dry-run")
    assert not any(in_inbox(fresh, event_id) for event_id in event_ids)
    first = reconcile(fresh)
    assert_fulfilled_once(fresh, sessions)
    second = reconcile(fresh)

    # Then the dry run counted them, the first run recorded every dropped event, the second nothing
    assert event_ids <= set(dry["recovered"]) and dry["events_recovered"] == first["events_recovered"]
    assert event_ids <= set(first["recovered"])
    assert first["sessions_recovered"] == 0  # their events were just enqueued: not fulfilled twice over
    assert first["still_failing"] == 0
    assert (second["events_recovered"], second["sessions_recovered"]) == (0, 0)
    assert second["events_known"] >= len(event_ids)
    counters = Stats(fresh.redis.client()).read_all()
    assert counters["reconcile_runs"][""] == 2
    assert counters["reconcile_recovered"]["events"] == first["events_recovered"]
    assert float(fresh.redis.client().get(RECONCILE_LAST_SUCCESS) or 0) > time.time() - 120


def test_reconcile_fulfils_a_paid_session_whose_records_redis_lost(fresh: Stack) -> None:
    # Given a purchase whose webhook was delivered and acknowledged, then lost by Redis before any
    # worker ran it (appendfsync everysec: the last second of writes, gone with the machine)
    fresh.procs["worker"].stop()
    sid = fresh.shop.buy(cross_sell=True)
    events = settle_deliveries(fresh, [sid])
    client = fresh.redis.client()
    for event in events:
        assert in_inbox(fresh, event["id"])
        client.delete(f"crossfill:event:{event['id']}")
        client.zrem("crossfill:inbox:enqueued", event["id"])
    lose_queued_messages(fresh, "events")

    # When reconcile lists only undelivered events (Stripe's own filter: this one counts as delivered)
    report = reconcile(fresh, "--undelivered")
    fresh.start_worker()

    # Then the completed session's list finds it paid with no order, and it is fulfilled once
    assert sid in report["recovered"] and report["sessions_recovered"] >= 1
    assert not any(event["id"] in report["recovered"] for event in events)
    assert_fulfilled_once(fresh, [sid])
    assert reconcile(fresh)["sessions_recovered"] == 0


def test_a_webhook_redelivered_for_a_stuck_event_enqueues_it_again(fresh: Stack) -> None:
    # Given an event recorded and enqueued, whose message is lost before a worker took it
    fresh.procs["worker"].stop()
    sid = fresh.shop.buy()
    [event] = settle_deliveries(fresh, [sid])
    assert lose_queued_messages(fresh, "events") == 1
    fresh.start_worker()
    duplicate = fresh.post_event(event)
    assert duplicate.json() == {"received": True, "duplicate": True}  # not stuck yet: a plain duplicate

    # When Stripe delivers it again once it has been stuck past the threshold
    time.sleep(STUCK_AFTER_S + 1)  # the threshold itself is what is tested: wall-clock time must pass
    answer = fresh.post_event(event)

    # Then the receiver enqueues it again instead of answering duplicate, and the order is fulfilled once
    assert answer.status_code == 200 and answer.json() == {"received": True, "requeued": True}
    assert_fulfilled_once(fresh, [sid])
    assert fresh.redis.client().hget(f"crossfill:event:{event['id']}", "requeued") == "1"


def test_the_sweeper_recovers_a_lost_event_message_and_lost_item_messages(fresh: Stack,
                                                                       sweeping_beat: Proc) -> None:
    from worker.app import make_celery

    # Given an event whose message was lost, and an order whose fulfill_item messages were lost
    fresh.procs["worker"].stop()
    lost_event_sid = fresh.shop.buy(cross_sell=True)
    [event] = settle_deliveries(fresh, [lost_event_sid])
    assert lose_queued_messages(fresh, "events") == 1
    control = make_celery(load_settings(fresh.env)).control
    fresh.start_worker()
    wait_until(lambda: bool(control.ping(timeout=1)), timeout=30, what="the worker to answer a ping")
    assert control.cancel_consumer("fulfillment", reply=True, timeout=5)
    lost_items_sid = fresh.shop.buy(extra_items=2)
    wait_until(lambda: fresh.redis.client().llen("fulfillment") >= 3, timeout=30,
               what="the event to be processed and its items queued")
    assert lose_queued_messages(fresh, "fulfillment") == 3
    assert control.add_consumer("fulfillment", reply=True, timeout=5)

    # When beat's sweeper runs (every 2 s) past the stuck threshold
    assert_fulfilled_once(fresh, [lost_event_sid, lost_items_sid], timeout=90)

    # Then both were recovered through the idempotent path, counted, logged by id; the event only once
    # it had been stuck past the threshold (its record says when it was received and when sent again)
    record = fresh.redis.client().hgetall(f"crossfill:event:{event['id']}")
    stuck_for = float(record["enqueued_at"]) - float(record["received_at"])
    assert record["requeued"] == "1" and stuck_for >= STUCK_AFTER_S, f"requeued after {stuck_for:.1f} s"
    counters = Stats(fresh.redis.client()).read_all()
    assert counters["swept"]["events"] >= 1 and counters["swept"]["items"] >= 3
    assert counters["sweeper_runs"][""] >= 1
    worker_log = fresh.procs["worker"].log_path.read_text(errors="replace")
    assert f"sweep: event {event['id']} was enqueued with no message for it" in worker_log


def test_beat_reconciles_dropped_webhooks_on_its_schedule(fresh: Stack, beat: Proc) -> None:
    # Given beat running (reconcile every 3 s) and every webhook dropped
    fresh.sim.post("/sim/faults", {"webhook_drop_rate": "1"})
    runs_before = Stats(fresh.redis.client()).read_all().get("reconcile_runs", {}).get("", 0)

    # When buyers pay
    sessions = [fresh.shop.buy(cross_sell=True), fresh.shop.buy(extra_items=1)]

    # Then beat's reconciliation fulfils each of their items once
    assert_fulfilled_once(fresh, sessions, timeout=90)
    # A run counts itself when it ends (after listing the connected accounts too), while other worker
    # threads may already have fulfilled the events it recorded: wait for the count, do not race it.
    wait_until(lambda: Stats(fresh.redis.client()).read_all().get("reconcile_runs", {}).get("", 0) > runs_before,
               timeout=60, what="the reconcile run to be counted")
