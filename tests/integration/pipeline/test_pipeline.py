"""Fulfillment end to end: simulator → receiver → worker → fulfillment target, all real processes."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from celery.result import AsyncResult

from fulfillment.settings import load_settings
from tests.support.processes import wait_until
from tests.support.shop import DEPLOY, PRO
from tests.support.stack import Stack
from worker.app import make_celery

pytestmark = pytest.mark.integration


def test_primary_and_cross_sell_are_both_fulfilled_and_the_cross_sell_is_flagged(fresh: Stack) -> None:
    # Given a buyer who adds the offered cross-sell in Checkout and pays
    session_id = fresh.shop.buy(cross_sell=True)

    # Then both items are fulfilled, each once, and only the cross-sell is flagged
    fresh.wait_order(session_id, "fulfilled")
    report = fresh.cli("order", session_id, "--json")
    assert report.returncode == 0, report.stderr
    order = json.loads(report.stdout)
    assert order["status"] == "fulfilled"
    flags = {item["product"]: item["cross_sell"] for item in order["items"]}
    assert flags == {PRO: False, DEPLOY: True}
    assert [item["anomalies"] for item in order["items"]] == [[], []]
    assert order["customer"] == "j***@example.com"
    for key in fresh.keys_of(session_id):
        assert fresh.target.calls[key] == 1
        assert fresh.target.effects[key]["item"]["cross_sell"] == (DEPLOY in json.dumps(
            fresh.target.effects[key]["item"]["product"]))
    assert fresh.target.bad_signatures == 0


def test_each_item_result_is_readable_under_its_deterministic_task_id(fresh: Stack) -> None:
    session_id = fresh.shop.buy()
    order = fresh.wait_order(session_id, "fulfilled")
    app = make_celery(load_settings(fresh.env))
    (item,) = order["items"]
    result = AsyncResult(f"fulfill:{session_id}:{item['id']}", app=app)
    wait_until(lambda: result.ready(), timeout=10, what="the Celery result")
    assert result.get(timeout=5)["status"] == "done"


def test_a_removed_cross_sell_is_not_fulfilled(fresh: Stack) -> None:
    # Given a buyer who adds the cross-sell, removes it again, then pays
    session = fresh.shop.open_session()
    fresh.sim.post(f"/sim/checkout/sessions/{session['id']}/cross_sell")
    fresh.sim.delete(f"/sim/checkout/sessions/{session['id']}/cross_sell")
    fresh.sim.post(f"/sim/checkout/sessions/{session['id']}/complete", {"outcome": "paid"})

    # Then only the primary item is fulfilled: crossfill read the current line items
    order = fresh.wait_order(session["id"], "fulfilled")
    assert [item["product"] for item in order["items"]] == [PRO]


def test_100_line_items_are_each_fulfilled_once(fresh: Stack) -> None:
    # Stripe's most in payment mode; more than the first page the session embeds (10)
    session_id = fresh.shop.buy(extra_items=99)
    order = fresh.wait_order(session_id, "fulfilled", timeout=60)
    assert len(order["items"]) == 100
    assert len({item["id"] for item in order["items"]}) == 100
    assert [fresh.target.calls[key] for key in fresh.keys_of(session_id)] == [1] * 100


def test_one_event_delivered_20_times_concurrently_fulfills_each_item_once(fresh: Stack) -> None:
    # Given a paid session whose completed event the simulator sends 20 more times, at once,
    # racing its first delivery
    session_id = fresh.shop.buy(cross_sell=True)
    (completed,) = [e for e in fresh.shop.events_of(session_id) if e["type"] == "checkout.session.completed"]
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda _: fresh.sim.post(f"/sim/events/{completed['id']}/resend"), range(20)))

    # Then each item's handler ran once
    fresh.wait_order(session_id, "fulfilled")
    fresh.sim.post("/sim/deliveries/wait", {"timeout_s": 30})
    deliveries = fresh.sim.get(f"/sim/events/{completed['id']}/deliveries")["data"]
    assert len(deliveries) == 21
    assert fresh.redis.client().hget(f"crossfill:event:{completed['id']}", "deliveries") is not None
    assert [fresh.target.calls[key] for key in fresh.keys_of(session_id)] == [1, 1]

    # And the same event under a new id, posted 20 times at once, is enqueued once and changes nothing
    replayed = dict(completed, id=completed["id"] + "x")
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: fresh.post_event(replayed).status_code, range(20)))
    assert set(statuses) == {200}
    wait_until(lambda: (fresh.redis.client().hget(f"crossfill:event:{replayed['id']}", "status") == "processed"),
               timeout=20, what="the replayed event to be processed")
    assert [fresh.target.calls[key] for key in fresh.keys_of(session_id)] == [1, 1]


def test_async_payment_pending_then_succeeded(fresh: Stack) -> None:
    # Given a session completed with a payment still pending
    session_id = fresh.shop.buy(cross_sell=True, outcome="async_pending")
    fresh.wait_order(session_id, "awaiting_payment")
    assert not any(key.startswith(session_id) for key in fresh.target.calls)

    # When the payment succeeds
    fresh.sim.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": "async_succeeded"})

    # Then every item is fulfilled
    order = fresh.wait_order(session_id, "fulfilled")
    assert len(order["items"]) == 2


def test_async_payment_failed_fulfills_nothing(fresh: Stack) -> None:
    session_id = fresh.shop.buy(outcome="async_pending")
    fresh.wait_order(session_id, "awaiting_payment")
    fresh.sim.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": "async_failed"})
    order = fresh.wait_order(session_id, "payment_failed")
    assert order["items"] == []
    assert not any(key.startswith(session_id) for key in fresh.target.calls)


def test_out_of_order_events_fulfill_once(fresh: Stack) -> None:
    # Given a session whose events reach crossfill only through us, last one first
    session_id = fresh.shop.buy(outcome="async_pending")
    fresh.wait_order(session_id, "awaiting_payment")
    fresh.sim.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": "async_succeeded"})
    fresh.wait_order(session_id, "fulfilled")
    events = {e["type"]: e for e in fresh.shop.events_of(session_id)}
    succeeded = dict(events["checkout.session.async_payment_succeeded"])
    completed = dict(events["checkout.session.completed"])

    # When they are delivered again as new events, succeeded before completed
    for event in (succeeded, completed):
        event["id"] = event["id"] + "late"
        assert fresh.post_event(event).status_code == 200
        wait_until(lambda e=event: fresh.redis.client().hget(f"crossfill:event:{e['id']}", "status") == "processed",
                   timeout=20, what=f"{event['type']} to be processed")

    # Then the order stays fulfilled and nothing was fulfilled twice
    assert fresh.order(session_id)["status"] == "fulfilled"  # type: ignore[index]
    assert [fresh.target.calls[key] for key in fresh.keys_of(session_id)] == [1]


def test_a_failing_stripe_api_still_fulfills_everything_once(fresh: Stack) -> None:
    # Given six buyers with a cross-sell in their carts
    sessions = [fresh.shop.open_session()["id"] for _ in range(6)]
    for session_id in sessions:
        fresh.sim.post(f"/sim/checkout/sessions/{session_id}/cross_sell")

    # When the Stripe API fails 30% of calls with a 500 and rate-limits beyond 20 req/s as they pay
    fresh.sim.post("/sim/faults", {"error_rate": 0.3, "rate_limit_per_s": 20, "path_prefix": "/v1/checkout"})
    for session_id in sessions:
        fresh.sim.post(f"/sim/checkout/sessions/{session_id}/complete", {"outcome": "paid"})

    # Then every order is fulfilled in the end, each item once
    for session_id in sessions:
        fresh.wait_order(session_id, "fulfilled", timeout=60)
    for session_id in sessions:
        assert [fresh.target.calls[key] for key in fresh.keys_of(session_id)] == [1, 1]


def test_rejected_item_is_dead_lettered_then_replayed_once(fresh: Stack) -> None:
    # Given a fulfillment system that rejects the request
    fresh.target.status = 400
    session_id = fresh.shop.buy()
    fresh.wait_order(session_id, "partially_failed")
    (key,) = fresh.keys_of(session_id)
    letter_id = f"fulfill:{key}"
    listing = fresh.cli("dlq", "list", "--json")
    letters = {letter["id"]: letter for letter in json.loads(listing.stdout)}
    assert letters[letter_id]["reason"] == "permanent"
    assert "400" in letters[letter_id]["error"]

    # When it is fixed and the dead letter replayed
    fresh.target.status = 200
    replay = fresh.cli("dlq", "replay", letter_id)
    assert replay.returncode == 0, replay.stderr

    # Then the item is fulfilled, once, and a second replay changes nothing
    fresh.wait_order(session_id, "fulfilled")
    assert list(fresh.target.effects).count(key) == 1
    again = fresh.cli("dlq", "replay", letter_id)
    assert again.returncode == 1 and "no dead letter" in again.stderr
    assert fresh.target.calls[key] == 2  # the rejected call and the replayed one


def test_worker_killed_inside_a_handler_fulfills_once_after_restart(fresh: Stack) -> None:
    # Given a fulfillment system slow enough to kill the worker mid-call
    fresh.target.delay_s = 2.0
    session_id = fresh.shop.buy()
    assert fresh.target.entered.wait(20), "the handler never called the target"

    # When the worker is killed with SIGKILL inside the handler, then a new one starts
    fresh.procs["worker"].kill9()
    fresh.target.delay_s = 0.0
    fresh.start_worker()

    # Then the item is fulfilled; its effect happened once (the idempotency key made the repeat a no-op)
    order = fresh.wait_order(session_id, "fulfilled", timeout=60)
    (key,) = fresh.keys_of(session_id)
    assert key in fresh.target.effects
    assert fresh.target.calls[key] == 2  # the killed run's call completed at the target, then the retry
    assert order["items"][0]["attempts"] == 2


def test_a_cross_sell_bought_twice_is_fulfilled_and_flagged_as_an_anomaly(fresh: Stack) -> None:
    # Given a session that carries the cross-sell product with quantity 2 (Checkout never offers that)
    pro, deploy = fresh.shop.price_of(PRO, 5000), fresh.shop.price_of(DEPLOY, 1500)
    session = fresh.sim.post("/v1/checkout/sessions", {
        "mode": "payment", "success_url": "https://example.com/done",
        "line_items": [{"price": pro, "quantity": 1}, {"price": deploy, "quantity": 2}]})
    fresh.sim.post(f"/sim/checkout/sessions/{session['id']}/complete", {"outcome": "paid"})

    # Then it is still fulfilled (the buyer paid), flagged in the order and counted in /metrics
    order = fresh.wait_order(session["id"], "fulfilled")
    flagged = [item for item in order["items"] if item["anomalies"]]
    assert [(item["product"], item["anomalies"]) for item in flagged] == [(DEPLOY, ["quantity"])]
    assert order["anomalies"] == [{"item": flagged[0]["id"], "anomalies": ["quantity"]}]
    metrics = fresh.metrics()
    counted = [line for line in metrics.splitlines()
               if line.startswith('crossfill_cross_sell_anomalies_total{anomaly="quantity"}')]
    assert counted and float(counted[0].split()[-1]) >= 1


def test_an_event_for_an_unknown_session_is_dead_lettered_not_dropped(fresh: Stack) -> None:
    # Given a signed event whose session the Stripe API does not know (404: permanent)
    event = {"id": "evt_unknown_session_1", "object": "event", "type": "checkout.session.completed",
             "created": 1_700_000_000, "livemode": False,
             "data": {"object": {"id": "cs_test_does_not_exist", "object": "checkout.session"}}}
    assert fresh.post_event(event).status_code == 200

    # Then it lands in the dead-letter queue with the reason, and the inbox says failed
    def letter() -> dict | None:
        shown = fresh.cli("dlq", "show", "event:evt_unknown_session_1")
        return json.loads(shown.stdout) if shown.returncode == 0 else None

    wait_until(lambda: letter() is not None, timeout=20, what="the dead letter")
    entry = letter()
    assert entry is not None and entry["reason"] == "permanent" and "404" in entry["error"]
    assert fresh.redis.client().hget("crossfill:event:evt_unknown_session_1", "status") == "failed"


def test_status_shows_queues_workers_and_orders(fresh: Stack) -> None:
    session_id = fresh.shop.buy()
    fresh.wait_order(session_id, "fulfilled")
    shown = fresh.cli("status", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert set(report["queues"]) == {"events", "fulfillment"}
    assert len(report["workers"]) == 1
    assert report["orders"]["fulfilled"] >= 1
    assert report["inbox"]["processed"] >= 1
    # its lag counted from the event's created time, and nothing paid left waiting
    late = report["lateness"]
    assert late["items_done_last_hour"] >= 1 and 0 <= late["lag_p50_s"] <= late["lag_p99_s"] < 60
    assert late["oldest_unfulfilled"] is None
    text = fresh.cli("status")
    assert "workers:      1 alive" in text.stdout
    assert "lateness:     lag p50 " in text.stdout and "oldest waiting order: none" in text.stdout


def test_replay_event_processes_it_again_without_fulfilling_twice(fresh: Stack) -> None:
    session_id = fresh.shop.buy(cross_sell=True)
    fresh.wait_order(session_id, "fulfilled")
    (completed,) = [e for e in fresh.shop.events_of(session_id) if e["type"] == "checkout.session.completed"]
    replayed = fresh.cli("replay-event", completed["id"])
    assert replayed.returncode == 0, replayed.stderr
    wait_until(lambda: fresh.redis.client().hget(f"crossfill:event:{completed['id']}", "status") == "processed",
               timeout=20, what="the replayed event")
    assert [fresh.target.calls[key] for key in fresh.keys_of(session_id)] == [1, 1]
    missing = fresh.cli("replay-event", "evt_never_received")
    assert missing.returncode == 1 and "not in the inbox" in missing.stderr
