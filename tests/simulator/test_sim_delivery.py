"""Webhook delivery: signed as Stripe signs, verified by stripe-python, retried, logged, resent."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from simulator import SimConfig, SimServer
from simulator.client import SimClient
from tests.support.simulator import API_KEY, Catalog, WebhookEndpoint

COMPLETED = "checkout.session.completed"


def _register(client: stripe.StripeClient, endpoint: WebhookEndpoint, events: list[str] | None = None) -> Any:
    return client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": events or [COMPLETED]})


def _purchase(client: stripe.StripeClient, sim: SimClient, catalog: Catalog, *, outcome: str = "paid") -> str:
    price = catalog.product(f"prod_{time.monotonic_ns()}")
    session = client.v1.checkout.sessions.create({"mode": "payment", "line_items": [{"price": price, "quantity": 1}]})
    sim.post(f"/sim/checkout/sessions/{session.id}/complete", {"outcome": outcome})
    return session.id


def _completed_event_id(client: stripe.StripeClient) -> str:
    return client.v1.events.list({"type": COMPLETED}).data[0].id


def test_a_delivery_verifies_with_stripe_python(client: stripe.StripeClient, sim: SimClient, catalog: Catalog,
                                                endpoint: WebhookEndpoint) -> None:
    secret = _register(client, endpoint).secret
    session_id = _purchase(client, sim, catalog)

    [received] = endpoint.wait_for(lambda got: len(got) == 1)
    event = stripe.Webhook.construct_event(received.body, received.signature, secret)

    assert (event.type, event.data.object.id, event.object) == (COMPLETED, session_id, "event")
    assert event.data.object.payment_status == "paid" and "line_items" not in event.data.object
    assert (event.livemode, event.pending_webhooks, event.api_version) == (False, 1, SimConfig().api_version)
    assert received.headers["Content-Type"].startswith("application/json")
    assert received.headers["User-Agent"].startswith("Stripe/")
    schemes = [part.split("=", 1)[0] for part in received.signature.split(",")]
    assert schemes == ["t", "v1", "v0"]


def test_only_matching_endpoints_receive_and_star_receives_everything(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    other = WebhookEndpoint()
    try:
        _register(client, endpoint, ["checkout.session.expired"])
        everything = _register(client, other, ["*"]).secret
        _purchase(client, sim, catalog)

        got = other.wait_for(lambda got: any(r.event["type"] == COMPLETED for r in got))
        sim.post("/sim/deliveries/wait", {"timeout_s": 5})

        assert endpoint.received == []
        assert {r.event["type"] for r in got} == {"product.created", "price.created", COMPLETED}
        for received in got:
            stripe.Webhook.construct_event(received.body, received.signature, everything)
    finally:
        other.stop()


def test_a_rolled_secret_signs_with_both_until_the_old_one_expires(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    created = _register(client, endpoint)
    old = created.secret

    rolled = sim.post(f"/sim/webhook_endpoints/{created.id}/roll_secret", {"expires_in_s": 3600})
    _purchase(client, sim, catalog)
    [during] = endpoint.wait_for(lambda got: len(got) == 1)
    sim.post(f"/sim/webhook_endpoints/{created.id}/roll_secret", {"expires_in_s": 0})
    _purchase(client, sim, catalog)
    after = endpoint.wait_for(lambda got: len(got) == 2)[1]

    assert rolled["secret"].startswith("whsec_") and rolled["secret"] != old
    assert during.signature.count("v1=") == 2
    stripe.Webhook.construct_event(during.body, during.signature, old)
    stripe.Webhook.construct_event(during.body, during.signature, rolled["secret"])
    assert after.signature.count("v1=") == 1
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(after.body, after.signature, old)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(after.body, after.signature, rolled["secret"])


def test_roll_secret_can_name_the_new_secret(client: stripe.StripeClient, sim: SimClient, catalog: Catalog,
                                             endpoint: WebhookEndpoint) -> None:
    created = _register(client, endpoint)

    sim.post(f"/sim/webhook_endpoints/{created.id}/roll_secret", {"secret": "whsec_next", "expires_in_s": 60})
    _purchase(client, sim, catalog)
    [received] = endpoint.wait_for(lambda got: len(got) == 1)

    stripe.Webhook.construct_event(received.body, received.signature, "whsec_next")


def test_non_2xx_is_retried_and_every_attempt_is_logged(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    secret = _register(client, endpoint).secret
    endpoint.script = [500, 302, 404]

    _purchase(client, sim, catalog)
    attempts = endpoint.wait_for(lambda got: len(got) == 4)
    sim.post("/sim/deliveries/wait", {"timeout_s": 5})
    event_id = _completed_event_id(client)
    [delivery] = sim.get(f"/sim/events/{event_id}/deliveries")["data"]

    assert [a["status_code"] for a in delivery["attempts"]] == [500, 302, 404, 200]
    assert delivery["state"] == "succeeded" and delivery["webhook_endpoint"]
    assert len({r.body for r in attempts}) == 1  # the same event every time
    for received in attempts:
        stripe.Webhook.construct_event(received.body, received.signature, secret)
    starts = [a["started_at"] for a in delivery["attempts"]]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    assert all(gap >= 0.9 * delay for gap, delay in zip(gaps, (0.03, 0.06, 0.12)))  # exponential backoff
    assert client.v1.events.retrieve(event_id).pending_webhooks == 0


def test_delivery_gives_up_after_the_last_attempt(client: stripe.StripeClient, sim: SimClient, catalog: Catalog,
                                                  endpoint: WebhookEndpoint) -> None:
    _register(client, endpoint)
    endpoint.default_status = 503

    _purchase(client, sim, catalog)
    assert sim.post("/sim/deliveries/wait", {"timeout_s": 5})["idle"] is True
    [delivery] = sim.get(f"/sim/events/{_completed_event_id(client)}/deliveries")["data"]

    assert delivery["state"] == "failed" and len(delivery["attempts"]) == 4  # sim_config's retry_max_attempts
    assert len(endpoint.received) == 4


@pytest.fixture
def impatient_server() -> Iterator[SimServer]:
    with SimServer(SimConfig(retry_base_ms=20, retry_max_attempts=2, delivery_timeout_s=0.2)) as server:
        yield server


def test_a_slow_endpoint_times_out_and_is_retried(impatient_server: SimServer, endpoint: WebhookEndpoint) -> None:
    client = stripe.StripeClient(API_KEY, base_addresses={"api": impatient_server.url}, max_network_retries=0)
    sim = SimClient(impatient_server.url, API_KEY)
    _register(client, endpoint)
    endpoint.delay_s = 0.5

    _purchase(client, sim, Catalog(client))
    sim.post("/sim/deliveries/wait", {"timeout_s": 5})
    [delivery] = sim.get(f"/sim/events/{_completed_event_id(client)}/deliveries")["data"]

    assert [a["status_code"] for a in delivery["attempts"]] == [None, None]
    assert all("Timeout" in a["error"] for a in delivery["attempts"]) and delivery["state"] == "failed"


def test_delivery_does_not_block_the_request_that_created_the_event(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    _register(client, endpoint)
    endpoint.delay_s = 0.8
    price = catalog.product("prod_slow")
    session = client.v1.checkout.sessions.create({"mode": "payment", "line_items": [{"price": price, "quantity": 1}]})

    started = time.monotonic()
    sim.post(f"/sim/checkout/sessions/{session.id}/complete")
    elapsed = time.monotonic() - started
    endpoint.wait_for(lambda got: len(got) == 1)

    assert elapsed < 0.6


def test_resend_delivers_a_deliberate_duplicate(client: stripe.StripeClient, sim: SimClient, catalog: Catalog,
                                                endpoint: WebhookEndpoint) -> None:
    secret = _register(client, endpoint).secret
    _purchase(client, sim, catalog)
    endpoint.wait_for(lambda got: len(got) == 1)
    event_id = _completed_event_id(client)

    resent = sim.post(f"/sim/events/{event_id}/resend")
    first, second = endpoint.wait_for(lambda got: len(got) == 2)
    sim.post("/sim/deliveries/wait", {"timeout_s": 5})
    deliveries = sim.get(f"/sim/events/{event_id}/deliveries")["data"]

    assert resent["data"][0]["resend"] is True
    assert first.event["id"] == second.event["id"] == event_id
    stripe.Webhook.construct_event(second.body, second.signature, secret)
    assert [d["resend"] for d in deliveries] == [False, True]
    assert all(d["state"] == "succeeded" for d in deliveries)


def test_a_deleted_endpoint_gets_nothing_more(client: stripe.StripeClient, sim: SimClient, catalog: Catalog,
                                              endpoint: WebhookEndpoint) -> None:
    created = _register(client, endpoint)
    client.v1.webhook_endpoints.delete(created.id)

    _purchase(client, sim, catalog)
    sim.post("/sim/deliveries/wait", {"timeout_s": 5})

    assert endpoint.received == []


def test_hundreds_of_events_are_delivered_promptly(client: stripe.StripeClient, sim_server: SimServer,
                                                   endpoint: WebhookEndpoint) -> None:
    _register(client, endpoint, ["product.created"])
    from concurrent.futures import ThreadPoolExecutor

    def create(n: int) -> None:
        with SimClient(sim_server.url, API_KEY) as sim_client:
            for k in range(25):
                sim_client.post("/v1/products", {"name": f"p{n}-{k}"})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(create, range(12)))
    got = endpoint.wait_for(lambda got: len(got) >= 300, timeout=10)
    elapsed = time.monotonic() - started

    assert len({json.loads(r.body)["id"] for r in got}) == 300
    assert elapsed < 10


