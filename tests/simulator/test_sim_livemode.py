"""A simulator in live mode, and a live platform's connected account acting in test mode: Stripe then
sends that account's test events to the platform's live Connect endpoints, which must check livemode."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import stripe
from click.testing import CliRunner

from simulator import SimConfig, SimServer
from simulator.cli import trigger
from simulator.client import SimClient
from tests.fixtures.stripe import problems
from tests.support.simulator import WebhookEndpoint

LIVE_KEY = "sk_live_crossfill_simulator_tests"
TEST_KEY = "sk_test_crossfill_simulator_tests"
COMPLETED = "checkout.session.completed"


@pytest.fixture
def live_server() -> Iterator[SimServer]:
    with SimServer(SimConfig(livemode=True, retry_base_ms=30)) as server:
        yield server


@pytest.fixture
def live(live_server: SimServer) -> stripe.StripeClient:
    return stripe.StripeClient(LIVE_KEY, base_addresses={"api": live_server.url}, max_network_retries=0)


def _buy(client: stripe.StripeClient, server: SimServer, key: str, account: str | None = None) -> str:
    options: Any = {"stripe_account": account} if account else {}
    client.v1.products.create({"id": "prod_live", "name": "Live"}, options)
    price = client.v1.prices.create({"product": "prod_live", "currency": "usd", "unit_amount": 900}, options)
    session = client.v1.checkout.sessions.create(
        {"mode": "payment", "line_items": [{"price": price.id, "quantity": 1}]}, options)
    with SimClient(server.url, key) as buyer:
        buyer.post(f"/sim/checkout/sessions/{session.id}/complete", {"outcome": "paid"})
    return session.id


def test_a_live_simulator_makes_live_objects_and_events(live: stripe.StripeClient, live_server: SimServer,
                                                        endpoint: WebhookEndpoint) -> None:
    secret = live.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": [COMPLETED]}).secret

    session_id = _buy(live, live_server, LIVE_KEY)
    [received] = endpoint.wait_for(lambda got: len(got) == 1)
    session = live.v1.checkout.sessions.retrieve(session_id, {"expand": ["line_items.data.price.product"]})

    assert session_id.startswith("cs_live_") and session.livemode is True
    assert session.line_items.data[0].price.livemode is True
    assert session.line_items.data[0].price.product.livemode is True
    event = stripe.Webhook.construct_event(received.body, received.signature, secret)
    assert event.livemode is True and event.data.object.livemode is True
    raw = requests.get(f"{live_server.url}/v1/checkout/sessions/{session_id}", auth=(LIVE_KEY, ""),
                       params={"expand[]": "line_items.data.price.product"}, timeout=10).json()
    assert problems(raw, "checkout.session") == [] and problems(received.event, "event") == []


def test_a_test_key_cannot_read_a_live_simulator(live_server: SimServer) -> None:
    response = requests.get(f"{live_server.url}/v1/products", auth=(TEST_KEY, ""), timeout=10)

    assert response.status_code == 401
    assert "sk_live_" in response.json()["error"]["message"]


def test_a_test_mode_connected_account_sends_test_events_to_the_live_connect_endpoint(
        live: stripe.StripeClient, live_server: SimServer, endpoint: WebhookEndpoint) -> None:
    # Given a live platform with a Connect endpoint, and a connected account acting in test mode
    secret = live.v1.webhook_endpoints.create(
        {"url": endpoint.url, "enabled_events": [COMPLETED], "connect": True}).secret
    with SimClient(live_server.url, LIVE_KEY) as platform:
        shop = platform.post("/v1/accounts", {"sim": {"id": "acct_1Test", "livemode": False}})["id"]
    testing = stripe.StripeClient(TEST_KEY, base_addresses={"api": live_server.url}, max_network_retries=0)

    # When a buyer pays that account's test-mode session
    session_id = _buy(testing, live_server, TEST_KEY, account=shop)
    [received] = endpoint.wait_for(lambda got: len(got) == 1)

    # Then the live Connect endpoint gets a test-mode event (livemode false) it must not fulfil
    event = stripe.Webhook.construct_event(received.body, received.signature, secret)
    assert (event.livemode, event.account, event.data.object.id) == (False, shop, session_id)
    assert session_id.startswith("cs_test_")
    with pytest.raises(stripe.AuthenticationError):
        live.v1.checkout.sessions.retrieve(session_id, options={"stripe_account": shop})


def test_trigger_with_a_live_key_on_a_live_simulator(live_server: SimServer, live: stripe.StripeClient) -> None:
    result = CliRunner().invoke(trigger, ["--api-base", live_server.url, "--api-key", LIVE_KEY, "--json"],
                                catch_exceptions=False)

    done = json.loads(result.output)
    assert result.exit_code == 0 and done["session"].startswith("cs_live_")
    assert live.v1.checkout.sessions.retrieve(done["session"]).payment_status == "paid"
