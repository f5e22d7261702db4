"""A second real client: stripe-node 23.1.0 drives the simulator and the receiver as a merchant would.

``tests/support/stripe_node/drive.js`` points the simulator's webhook endpoint and thin destination at
a recorder that checks every delivery with stripe-node's own parsers and forwards it to the receiver;
it creates a catalog, pays a session without and one with the cross-sell, and lists with
auto-pagination (v1 and v2). Every delivery is then parsed again with stripe-python, and every order
must be fulfilled once. Skips where node/npm or the package cannot be had.
"""
from __future__ import annotations

import json

import stripe

from tests.integration.pipeline.test_recovery import assert_fulfilled_once
from tests.support.node import STRIPE_NODE_VERSION, run_script
from tests.support.shop import DEPLOY, PRO
from tests.support.stack import WEBHOOK_SECRET, Stack

#: The simulator sends both a snapshot endpoint's events and a thin destination's notifications.
STACK_PAYLOADS = ("snapshot", "thin")


def test_stripe_node_drives_the_simulator_and_the_receiver(fresh: Stack) -> None:
    assert fresh.endpoint_id and fresh.destination_id
    result = run_script("drive.js", {
        "SIM_URL": fresh.sim.base_url, "API_KEY": "sk_test_crossfill_pipeline",
        "ENDPOINT_ID": fresh.endpoint_id, "DESTINATION_ID": fresh.destination_id,
        "WEBHOOK_SECRET": WEBHOOK_SECRET, "DESTINATION_SECRET": fresh.destination_secret,
        "RECEIVER_URL": fresh.receiver_url, "PRO": PRO, "DEPLOY": DEPLOY})

    # stripe-node's parsers accepted every delivery, and the receiver acknowledged each
    deliveries = result["deliveries"]
    assert result["failures"] == [], f"stripe-node {STRIPE_NODE_VERSION} refused: {result['failures']}"
    sessions = [session["id"] for session in result["sessions"]]
    kinds = sorted((d["kind"], d["related"]) for d in deliveries)
    assert kinds == sorted([(kind, sid) for sid in sessions for kind in ("snapshot", "thin")])
    assert all(d["receiver"] == 200 for d in deliveries)

    # stripe-python 16.1's parsers accept the very same bytes
    client = stripe.StripeClient("sk_test_unused")
    for delivery in deliveries:
        if delivery["kind"] == "thin":
            notification = client.parse_event_notification(delivery["body"], delivery["signature"],
                                                            fresh.destination_secret)
            assert notification.type == "v1.checkout.session.completed"
        else:
            event = stripe.Webhook.construct_event(delivery["body"], delivery["signature"], WEBHOOK_SECRET)
            assert event.type == "checkout.session.completed"

    # Each purchase is fulfilled once, though announced twice (snapshot and thin)
    assert_fulfilled_once(fresh, sessions)
    for session in result["sessions"]:
        order = fresh.order(session["id"]) or {}
        assert len(order["items"]) == session["items"]
        assert [item["cross_sell"] for item in order["items"]].count(True) == int(session["cross_sell"])

    # Auto-pagination over every list stripe-node walked
    assert len(result["line_items"]) == len(set(result["line_items"])) == result["sessions"][1]["items"]
    assert (result["embedded_line_items"], result["embedded_has_more"]) == (10, True)
    assert result["prices_by_lookup_key"] == ["node_deploy", "node_pro"]
    assert set(sessions) <= set(result["completed_sessions"])
    assert len(result["events"]) >= 2 and len(result["thin_events"]) >= 2
    assert len(result["thin_events"]) == len(set(result["thin_events"]))
    thin_ids = {d["id"] for d in deliveries if d["kind"] == "thin"}
    assert thin_ids <= set(result["thin_events"]), json.dumps(result["thin_events"])
