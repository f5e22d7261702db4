"""Thin events on real processes: a purchase announced by a thin event destination, by a snapshot
webhook endpoint, or by both at once (a platform migrating) is fulfilled once, concurrent deliveries
included; a thin notification that never arrives, or is lost after it was acknowledged, is recovered.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.integration.pipeline.test_recovery import (
    STUCK_AFTER_S,
    assert_fulfilled_once,
    in_inbox,
    lose_queued_messages,
    reconcile,
)
from tests.support.processes import crossfill, wait_until
from tests.support.stack import Stack

#: The simulator sends both: a webhook endpoint (snapshot events) and a thin event destination.
STACK_PAYLOADS = ("snapshot", "thin")
STACK_EXTRA_ENV = {"CROSSFILL_STUCK_AFTER": str(STUCK_AFTER_S)}


def thin_events_of(stack: Stack, session_id: str) -> list[dict[str, Any]]:
    """The thin events the simulator created about *session_id* (``GET /v2/core/events``)."""
    return [event for event in requests.get(
        f"{stack.sim.base_url}/v2/core/events", params={"object_id": session_id}, timeout=10,
        headers={"Authorization": "Bearer sk_test_crossfill_pipeline"}).json()["data"]]


def inbox_of(stack: Stack, event_id: str) -> dict[str, str]:
    return stack.redis.client().hgetall(f"crossfill:event:{event_id}")  # type: ignore[return-value]


def settle(stack: Stack) -> None:
    assert stack.sim.post("/sim/deliveries/wait", {"timeout_s": "20"})["idle"]


def test_a_thin_only_purchase_is_fulfilled_once(fresh: Stack) -> None:
    fresh.routes(snapshot=False, thin=True)

    sid = fresh.shop.buy(cross_sell=True)

    assert_fulfilled_once(fresh, [sid])
    [thin] = thin_events_of(fresh, sid)
    record = inbox_of(fresh, thin["id"])
    assert (record["type"], record["status"]) == ("v1.checkout.session.completed", "processed")
    assert not in_inbox(fresh, thin["snapshot_event"])  # the snapshot twin was never sent


def test_a_snapshot_only_purchase_is_fulfilled_once(fresh: Stack) -> None:
    fresh.routes(snapshot=True, thin=False)

    sid = fresh.shop.buy(cross_sell=True)

    assert_fulfilled_once(fresh, [sid])
    assert thin_events_of(fresh, sid) == []


def test_a_purchase_announced_by_both_is_fulfilled_once_and_read_once(fresh: Stack) -> None:
    fresh.routes(snapshot=True, thin=True)

    sid = fresh.shop.buy(cross_sell=True)
    assert_fulfilled_once(fresh, [sid])
    settle(fresh)

    # One of the twins was processed; the other, recorded second, was kept as its twin and never queued
    [thin] = thin_events_of(fresh, sid)
    records = {event_id: inbox_of(fresh, event_id) for event_id in (thin["id"], thin["snapshot_event"])}
    statuses = sorted(record["status"] for record in records.values())
    assert statuses == ["ignored", "processed"], records
    [twin] = [record for record in records.values() if record["status"] == "ignored"]
    assert twin["reason"] == "twin" and twin["twin"] in records


def test_twins_delivered_many_times_at_once_fulfil_each_item_once(fresh: Stack) -> None:
    # Given a paid session whose snapshot event and thin notification both arrive, 12 times each,
    # at once, racing each other
    fresh.routes(snapshot=True, thin=True)
    fresh.sim.post("/sim/faults", {"webhook_drop_rate": "1"})  # the simulator's own deliveries: lost
    sid = fresh.shop.buy(cross_sell=True)
    settle(fresh)
    [snapshot] = [e for e in fresh.shop.events_of(sid) if e["type"] == "checkout.session.completed"]
    [thin] = thin_events_of(fresh, sid)
    # ... and a thin notification naming no snapshot twin (other SDKs' fixtures, a future Stripe): only
    # the ledger's per-item claim stands between it and a second fulfilment
    unnamed = {**{k: v for k, v in thin.items() if k != "snapshot_event"}, "id": thin["id"] + "_unnamed"}

    with ThreadPoolExecutor(max_workers=18) as pool:
        answers = list(pool.map(fresh.post_event, [snapshot, thin, unnamed] * 12))

    # Then every delivery was acknowledged, one of the twins queued, and each item fulfilled once
    assert all(answer.status_code == 200 for answer in answers)
    assert_fulfilled_once(fresh, [sid])
    enqueued = [a.json() for a in answers if a.json() == {"received": True}]
    assert len(enqueued) == 2  # one of the twins, and the unnamed one
    statuses = sorted(inbox_of(fresh, e)["status"] for e in (snapshot["id"], thin["id"]))
    assert statuses[0] == "ignored"
    wait_until(lambda: inbox_of(fresh, unnamed["id"])["status"] == "processed", timeout=20,
               what="the unnamed notification to be processed")
    assert_fulfilled_once(fresh, [sid])


def test_a_dropped_thin_notification_is_recovered_by_reconcile(fresh: Stack) -> None:
    # Given a thin-only deployment whose notification is lost on the way (acknowledged, never seen)
    fresh.routes(snapshot=False, thin=True)
    fresh.sim.post("/sim/faults", {"webhook_drop_rate": "1"})
    sid = fresh.shop.buy(cross_sell=True)
    settle(fresh)
    [thin] = thin_events_of(fresh, sid)
    assert not in_inbox(fresh, thin["id"])

    # When reconciliation runs
    report = reconcile(fresh)

    # Then the change it announced is recorded (as its snapshot event) and fulfilled once; the thin
    # notification arriving late is its twin: acknowledged, not queued
    assert thin["snapshot_event"] in report["recovered"]
    assert_fulfilled_once(fresh, [sid])
    fresh.sim.delete("/sim/faults")
    late = fresh.post_event(thin)
    assert late.json() == {"received": True, "duplicate": True, "twin": thin["snapshot_event"]}
    assert reconcile(fresh)["events_recovered"] == 0
    assert_fulfilled_once(fresh, [sid])


def test_a_thin_notification_lost_after_acknowledgement_is_requeued_by_the_sweeper(fresh: Stack) -> None:
    # Given a thin notification acknowledged and enqueued, whose message is lost before a worker took it
    fresh.routes(snapshot=False, thin=True)
    fresh.procs["worker"].stop()
    sid = fresh.shop.buy()
    settle(fresh)
    [thin] = thin_events_of(fresh, sid)
    assert inbox_of(fresh, thin["id"])["status"] == "enqueued"
    assert lose_queued_messages(fresh, "events") == 1
    fresh.start_worker()

    # When beat's sweeper runs (every second; reconciliation kept out of the way)
    beat = crossfill("beat", ["beat"], {**fresh.env, "CROSSFILL_SWEEP_EVERY": "1",
                                          "CROSSFILL_RECONCILE_EVERY": "3600"}, fresh.tmp)
    fresh.procs["beat"] = beat
    try:
        # Then, past the stuck threshold, it is requeued and fulfilled once
        assert_fulfilled_once(fresh, [sid], timeout=60)
        record = inbox_of(fresh, thin["id"])
        assert record["status"] == "processed" and record.get("requeued") == "1"
    finally:
        fresh.procs.pop("beat").stop()
