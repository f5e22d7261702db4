"""Every kind of delivery the simulator sends is accepted by Stripe's own parsers: stripe-python 16.1
(``Webhook.construct_event``, ``StripeClient.parse_event_notification``) and stripe-node 23.1.0
(``webhooks.constructEvent``, ``parseEventNotification``; skipped where node is missing)."""
from __future__ import annotations

import json
from pathlib import Path

import stripe

from simulator import SimServer
from simulator.client import SimClient
from simulator.scenario import purchase
from tests.support.node import run_script
from tests.support.simulator import API_KEY, Received, WebhookEndpoint

SNAPSHOT_SECRET = "whsec_parsers_snapshot_endpoint"
CHECKOUT_TYPES = ["checkout.session.completed", "checkout.session.async_payment_succeeded",
                  "checkout.session.async_payment_failed", "checkout.session.expired"]


def _every_kind(sim_server: SimServer, client: stripe.StripeClient, endpoint: WebhookEndpoint) -> dict[str, str]:
    """Register a webhook endpoint, a thin destination (platform and connected accounts) and a snapshot
    destination at *endpoint*, make every checkout event happen, ping; the secret of each sender."""
    with SimClient(sim_server.url, API_KEY) as sim:
        sim.post("/v1/webhook_endpoints", {"url": endpoint.url, "enabled_events": CHECKOUT_TYPES,
                                           "secret": SNAPSHOT_SECRET})
        secrets = {}
        for payload, events in (("thin", [f"v1.{t}" for t in CHECKOUT_TYPES]), ("snapshot", CHECKOUT_TYPES)):
            created = client.v2.core.event_destinations.create({  # type: ignore[arg-type]
                "name": payload, "type": "webhook_endpoint", "event_payload": payload, "enabled_events": events,
                "events_from": ["self", "other_accounts"], "webhook_endpoint": {"url": endpoint.url},
                "include": ["webhook_endpoint.signing_secret"]})
            secrets[payload] = created.webhook_endpoint.signing_secret
            if payload == "thin":
                client.v2.core.event_destinations.ping(created.id)
        purchase(sim, cross_sell=True)
        purchase(sim, outcome="async_succeeded")
        purchase(sim, outcome="async_failed")
        expiring = sim.post("/v1/checkout/sessions", {
            "mode": "payment", "line_items": [{"price": client.v1.prices.list({"limit": 1}).data[0].id,
                                               "quantity": 1}]})
        sim.post(f"/sim/checkout/sessions/{expiring['id']}/expire")
        client.v1.accounts.create({"type": "standard", "sim": {"id": "acct_parsers"}})  # type: ignore[typeddict-unknown-key]
    with SimClient(sim_server.url, API_KEY, account="acct_parsers") as shop:
        purchase(shop)
    return secrets


def _secret_of(received: Received, secrets: dict[str, str]) -> str:
    """Which sender signed *received*: each signs with its own secret."""
    for secret in (SNAPSHOT_SECRET, *secrets.values()):
        try:
            stripe.WebhookSignature.verify_header(received.body.decode(), received.signature, secret, 300)
            return secret
        except stripe.SignatureVerificationError:
            continue
    raise AssertionError(f"no sender's secret signs {received.body[:80]!r}")


def test_stripe_python_and_stripe_node_parse_every_delivery(sim_server: SimServer, client: stripe.StripeClient,
                                                            endpoint: WebhookEndpoint, tmp_path: Path) -> None:
    secrets = _every_kind(sim_server, client, endpoint)
    assert SimClient(sim_server.url, API_KEY).post("/sim/deliveries/wait", {"timeout_s": "10"})["idle"]
    received = list(endpoint.received)
    thin_types = {json.loads(r.body)["type"] for r in received if json.loads(r.body)["object"] == "v2.core.event"}
    assert thin_types == {"v2.core.event_destination.ping", *(f"v1.{t}" for t in CHECKOUT_TYPES)}

    signed = [(r, _secret_of(r, secrets)) for r in received]
    parsed_by_python = []
    for delivery, secret in signed:
        if json.loads(delivery.body)["object"] == "v2.core.event":
            parsed_by_python.append(client.parse_event_notification(delivery.body, delivery.signature, secret).type)
        else:
            parsed_by_python.append(stripe.Webhook.construct_event(delivery.body, delivery.signature, secret).type)

    path = tmp_path / "deliveries.json"
    path.write_text(json.dumps([{"body": d.body.decode(), "signature": d.signature, "secret": s} for d, s in signed]))
    parsed_by_node = run_script("parse.js", {"DELIVERIES": str(path)})

    assert parsed_by_python == [json.loads(d.body)["type"] for d, _ in signed]
    assert [p.get("error") for p in parsed_by_node] == [None] * len(signed)
    assert [p["type"] for p in parsed_by_node] == parsed_by_python
    assert "acct_parsers" in {p["context"] for p in parsed_by_node}
