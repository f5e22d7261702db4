"""``/v2/core``: event destinations and thin events, driven by stripe-python 16.1's v2 client."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
import requests
import stripe

from simulator import SimServer
from simulator.client import SimClient
from simulator.scenario import purchase
from tests.support.simulator import API_KEY, WebhookEndpoint

THIN_TYPES = ["v1.checkout.session.completed", "v1.checkout.session.async_payment_succeeded",
              "v1.checkout.session.async_payment_failed", "v1.checkout.session.expired"]


def _destination(client: stripe.StripeClient, url: str, payload: str = "thin", **extra: object) -> stripe.v2.core.EventDestination:
    events = THIN_TYPES if payload == "thin" else [t[3:] for t in THIN_TYPES]
    return client.v2.core.event_destinations.create({  # type: ignore[arg-type]
        "name": "crossfill", "type": "webhook_endpoint", "event_payload": payload, "enabled_events": events,
        "webhook_endpoint": {"url": url}, "include": ["webhook_endpoint.signing_secret", "webhook_endpoint.url"],
        **extra})


def test_a_destination_shows_its_secret_only_when_included(client: stripe.StripeClient,
                                                           endpoint: WebhookEndpoint) -> None:
    created = _destination(client, endpoint.url)
    fetched = client.v2.core.event_destinations.retrieve(created.id)
    with_url = client.v2.core.event_destinations.retrieve(created.id, {"include": ["webhook_endpoint.url"]})

    assert created.object == "v2.core.event_destination" and created.type == "webhook_endpoint"
    assert created.webhook_endpoint.signing_secret.startswith("whsec_")
    assert created.webhook_endpoint.url == endpoint.url
    assert (created.event_payload, created.status, created.events_from) == ("thin", "enabled", ["self"])
    datetime.fromisoformat(created.created.replace("Z", "+00:00"))  # RFC 3339, not unix seconds
    assert "signing_secret" not in fetched.webhook_endpoint and "url" not in fetched.webhook_endpoint
    assert with_url.webhook_endpoint.url == endpoint.url


def test_update_disable_enable_list_and_delete(client: stripe.StripeClient, endpoint: WebhookEndpoint) -> None:
    created = _destination(client, endpoint.url)
    events = client.v2.core.event_destinations

    renamed = events.update(created.id, {"name": "renamed", "enabled_events": THIN_TYPES[:1]})
    disabled = events.disable(created.id)
    enabled = events.enable(created.id)
    listed = list(events.list({"limit": 1}).auto_paging_iter())
    deleted = events.delete(created.id)

    assert (renamed.name, renamed.enabled_events) == ("renamed", THIN_TYPES[:1])
    assert (disabled.status, enabled.status) == ("disabled", "enabled")
    assert [d.id for d in listed] == [created.id]
    assert deleted.id == created.id
    with pytest.raises(stripe.InvalidRequestError):
        events.retrieve(created.id)


def test_v2_takes_json_and_answers_v2_errors(sim_server: SimServer) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    form = requests.post(f"{sim_server.url}/v2/core/event_destinations", data="name=x&type=webhook_endpoint",
                         headers=headers, timeout=5)
    missing = requests.get(f"{sim_server.url}/v2/core/events/evt_nope", headers=headers, timeout=5)
    unknown = requests.post(f"{sim_server.url}/v2/core/event_destinations", json={"nope": 1}, headers=headers,
                            timeout=5)

    assert form.status_code == 400 and "JSON" in form.json()["error"]["message"]
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"type", "code", "message"}  # v2 errors carry no param
    assert unknown.status_code == 400 and "nope" in unknown.json()["error"]["message"]


def test_thin_notifications_are_signed_parsed_and_fetched(client: stripe.StripeClient, sim: SimClient,
                                                          endpoint: WebhookEndpoint) -> None:
    destination = _destination(client, endpoint.url)
    secret = destination.webhook_endpoint.signing_secret

    bought = purchase(sim, cross_sell=True)
    (received,) = endpoint.wait_for(lambda got: len(got) == 1)
    notification = client.parse_event_notification(received.body, received.signature, secret)
    event = notification.fetch_event()
    session = notification.fetch_related_object()

    body = json.loads(received.body)
    assert body["object"] == "v2.core.event" and body["type"] == "v1.checkout.session.completed"
    assert "data" not in body  # thin: the receiver reads the object itself
    assert notification.related_object.id == bought.session_id
    assert session.id == bought.session_id and session.payment_status == "paid"
    assert event.id == notification.id
    snapshot = client.v1.events.retrieve(body["snapshot_event"])
    assert (snapshot.type, snapshot.data.object.id) == ("checkout.session.completed", bought.session_id)


def test_a_snapshot_destination_gets_the_v1_event(client: stripe.StripeClient, sim: SimClient,
                                                  endpoint: WebhookEndpoint) -> None:
    destination = _destination(client, endpoint.url, payload="snapshot")

    purchase(sim)
    (received,) = endpoint.wait_for(lambda got: len(got) == 1)
    event = stripe.Webhook.construct_event(received.body, received.signature,
                                           destination.webhook_endpoint.signing_secret)

    assert (event.object, event.type) == ("event", "checkout.session.completed")


def test_ping_sends_a_signed_thin_event(client: stripe.StripeClient, endpoint: WebhookEndpoint) -> None:
    destination = _destination(client, endpoint.url)

    ping = client.v2.core.event_destinations.ping(destination.id)
    (received,) = endpoint.wait_for(lambda got: len(got) == 1)
    parsed = client.parse_event_notification(received.body, received.signature,
                                             destination.webhook_endpoint.signing_secret)

    assert ping.type == parsed.type == "v2.core.event_destination.ping"


def test_events_list_pages_and_filters(client: stripe.StripeClient, sim: SimClient,
                                       endpoint: WebhookEndpoint) -> None:
    _destination(client, endpoint.url)
    sessions = [purchase(sim).session_id for _ in range(3)]

    listed = list(client.v2.core.events.list({"types": ["v1.checkout.session.completed"],
                                              "limit": 2}).auto_paging_iter())
    one = list(client.v2.core.events.list({"object_id": sessions[1]}).auto_paging_iter())
    none = client.v2.core.events.list({"types": ["v1.checkout.session.expired"]})

    assert [e.related_object.id for e in listed] == list(reversed(sessions))  # newest first
    assert [e.related_object.id for e in one] == [sessions[1]]
    assert none.data == []


def test_connected_accounts_events_reach_a_platform_destination_with_context(
        client: stripe.StripeClient, sim_server: SimServer, endpoint: WebhookEndpoint) -> None:
    destination = _destination(client, endpoint.url, events_from=["other_accounts"])
    client.v1.accounts.create({"type": "standard", "sim": {"id": "acct_thin1"}})  # type: ignore[typeddict-unknown-key]

    with SimClient(sim_server.url, API_KEY, account="acct_thin1") as shop:
        bought = purchase(shop)
    (received,) = endpoint.wait_for(lambda got: len(got) == 1)
    notification = client.parse_event_notification(received.body, received.signature,
                                                    destination.webhook_endpoint.signing_secret)

    assert str(notification.context) == "acct_thin1"
    assert notification.fetch_related_object().id == bought.session_id  # read with Stripe-Context


def test_a_thin_event_can_be_resent_and_its_deliveries_read(client: stripe.StripeClient, sim: SimClient,
                                                           endpoint: WebhookEndpoint) -> None:
    destination = _destination(client, endpoint.url)
    purchase(sim)
    (first,) = endpoint.wait_for(lambda got: len(got) == 1)
    event_id = json.loads(first.body)["id"]

    sim.post(f"/sim/events/{event_id}/resend")
    (_, again) = endpoint.wait_for(lambda got: len(got) == 2)
    deliveries = sim.get(f"/sim/events/{event_id}/deliveries")["data"]

    assert again.body == first.body
    assert client.parse_event_notification(again.body, again.signature,
                                           destination.webhook_endpoint.signing_secret).id == event_id
    assert [(d["webhook_endpoint"], d["resend"]) for d in deliveries] == [(destination.id, False),
                                                                          (destination.id, True)]
