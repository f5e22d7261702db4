"""Stripe Connect in the simulator: connected accounts, the Stripe-Account header scoping every object,
events carrying ``account``, and Connect endpoints that receive them (signed with their own secret)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe
from click.testing import CliRunner

from fulfillment.catalog import load_catalog
from simulator import SimConfig, SimServer, Simulator
from simulator.cli import sim, trigger
from simulator.client import SimClient
from simulator.errors import RemoteError
from simulator.ratelimit import RateLimits
from simulator.scenario import DEPLOY, PRO
from tests.fixtures.stripe import problems
from tests.support.simulator import API_KEY, WebhookEndpoint, sim_process

COMPLETED = "checkout.session.completed"


def _shop(client: stripe.StripeClient, account: str | None, product_id: str = "prod_mug") -> str:
    """A product with one price in *account* (the platform for None); returns the price id."""
    options: Any = {"stripe_account": account} if account else {}
    client.v1.products.create({"id": product_id, "name": product_id}, options)
    return client.v1.prices.create({"product": product_id, "currency": "usd", "unit_amount": 1200}, options).id


def _buy(client: stripe.StripeClient, sim_server: SimServer, account: str | None, price: str) -> str:
    options: Any = {"stripe_account": account} if account else {}
    session = client.v1.checkout.sessions.create(
        {"mode": "payment", "line_items": [{"price": price, "quantity": 1}]}, options)
    with SimClient(sim_server.url, API_KEY) as buyer:  # the buyer's Checkout page needs no account header
        buyer.post(f"/sim/checkout/sessions/{session.id}/complete", {"outcome": "paid"})
    return session.id


def test_creating_and_reading_connected_accounts(client: stripe.StripeClient) -> None:
    created = client.v1.accounts.create({"type": "express", "country": "fr", "email": "shop@example.com"})

    fetched = client.v1.accounts.retrieve(created.id)
    listed = client.v1.accounts.list()

    assert created.id.startswith("acct_") and created.object == "account"
    assert (fetched.type, fetched.country, fetched.email) == ("express", "FR", "shop@example.com")
    assert [a.id for a in listed.data] == [created.id]
    assert problems(fetched.to_dict(), "account") == []


def test_the_stripe_account_header_scopes_every_object(client: stripe.StripeClient, sim_server: SimServer) -> None:
    shop = client.v1.accounts.create({"type": "standard"}).id
    other = client.v1.accounts.create({"type": "standard"}).id
    price = _shop(client, shop)
    session_id = _buy(client, sim_server, shop, price)

    as_shop: Any = {"stripe_account": shop}
    as_other: Any = {"stripe_account": other}
    seen = client.v1.checkout.sessions.retrieve(session_id, {"expand": ["line_items.data.price.product"]}, as_shop)
    for read in (lambda o: client.v1.checkout.sessions.retrieve(session_id, options=o),
                 lambda o: client.v1.checkout.sessions.line_items.list(session_id, options=o),
                 lambda o: client.v1.prices.retrieve(price, options=o),
                 lambda o: client.v1.products.retrieve("prod_mug", options=o)):
        for wrong in (as_other, {}):
            with pytest.raises(stripe.InvalidRequestError) as caught:
                read(wrong)
            assert caught.value.http_status == 404
    events_of_shop = client.v1.events.list({"type": COMPLETED}, as_shop).data
    events_of_platform = client.v1.events.list({"type": COMPLETED}).data

    assert seen.line_items.data[0].price.product.id == "prod_mug"
    assert [e.data.object.id for e in events_of_shop] == [session_id]
    assert events_of_platform == [] and client.v1.events.list(options=as_other).data == []
    assert client.v1.checkout.sessions.list(options=as_shop).data[0].id == session_id


def test_the_same_product_id_in_two_accounts_is_two_products(client: stripe.StripeClient) -> None:
    shop = client.v1.accounts.create({"type": "standard"}).id
    platform_price = _shop(client, None, "prod_same")
    shop_price = _shop(client, shop, "prod_same")

    platform_prices = client.v1.prices.list({"product": "prod_same"}).data
    shop_prices = client.v1.prices.list({"product": "prod_same"}, {"stripe_account": shop}).data

    assert [p.id for p in platform_prices] == [platform_price] and [p.id for p in shop_prices] == [shop_price]


def test_rate_limits_count_per_account() -> None:
    # A clock that never moves: every request falls in one second, however slow the machine.
    simulator = Simulator(SimConfig(rate_limits=RateLimits("custom", 2, None)), clock=lambda: 1000.0)
    with SimServer(simulator=simulator) as server, SimClient(server.url, API_KEY) as platform:
        shop = platform.post("/v1/accounts", {})["id"]
        with SimClient(server.url, API_KEY, account=shop) as as_shop:
            as_shop.get("/v1/products")  # the platform's request does not count: the shop has its own two
            as_shop.get("/v1/products")
            with pytest.raises(RemoteError) as caught:
                as_shop.get("/v1/products")
        stats = platform.get("/sim/stats")

    assert caught.value.status == 429
    assert stats["accounts"][shop] == {"requests": 3, "rate_limited": 1}
    assert stats["accounts"]["platform"] == {"requests": 1, "rate_limited": 0}


def test_a_connected_account_cannot_connect_accounts(client: stripe.StripeClient) -> None:
    shop = client.v1.accounts.create({"type": "standard"}).id

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.accounts.create({"type": "standard"}, {"stripe_account": shop})

    assert caught.value.http_status == 400 and [a.id for a in client.v1.accounts.list().data] == [shop]


def test_an_unknown_stripe_account_is_403_account_invalid(sim_server: SimServer) -> None:
    response = requests.get(f"{sim_server.url}/v1/products", auth=(API_KEY, ""),
                            headers={"Stripe-Account": "acct_nobody"}, timeout=10)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "account_invalid"
    assert "acct_nobody" in response.json()["error"]["message"]


def test_connect_endpoints_get_connected_accounts_events_and_plain_ones_the_platforms(
        client: stripe.StripeClient, sim_server: SimServer, endpoint: WebhookEndpoint) -> None:
    # Given a plain endpoint and a Connect endpoint of the platform, each with its own secret
    connect_receiver = WebhookEndpoint()
    try:
        plain = client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": [COMPLETED]})
        connect = client.v1.webhook_endpoints.create(
            {"url": connect_receiver.url, "enabled_events": [COMPLETED], "connect": True})
        shop = client.v1.accounts.create({"type": "standard"}).id
        # When one purchase happens on the platform and one on the connected account
        own_session = _buy(client, sim_server, None, _shop(client, None))
        shop_session = _buy(client, sim_server, shop, _shop(client, shop))
        [own] = endpoint.wait_for(lambda got: len(got) == 1)
        [theirs] = connect_receiver.wait_for(lambda got: len(got) == 1)
        with SimClient(sim_server.url, API_KEY) as sim:
            assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]
    finally:
        connect_receiver.stop()

    # Then each endpoint got only its own kind, verifiable with its own secret only
    own_event = stripe.Webhook.construct_event(own.body, own.signature, plain.secret)
    their_event = stripe.Webhook.construct_event(theirs.body, theirs.signature, connect.secret)
    assert len(endpoint.received) == 1 and len(connect_receiver.received) == 1
    assert own_event.data.object.id == own_session and "account" not in own.event
    assert their_event.data.object.id == shop_session and theirs.event["account"] == shop
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(theirs.body, theirs.signature, plain.secret)
    assert problems(theirs.event, "event") == []


def test_a_connected_accounts_event_can_be_resent_and_listed_undelivered(
        client: stripe.StripeClient, sim_server: SimServer, endpoint: WebhookEndpoint) -> None:
    endpoint.default_status = 500
    connect = client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": ["*"], "connect": True})
    shop = client.v1.accounts.create({"type": "standard"}).id
    _buy(client, sim_server, shop, _shop(client, shop))
    with SimClient(sim_server.url, API_KEY) as sim:
        assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]
        [undelivered] = client.v1.events.list({"type": COMPLETED, "delivery_success": False},
                                              {"stripe_account": shop}).data
        endpoint.default_status = 200
        sent = sim.post(f"/sim/events/{undelivered.id}/resend", {"webhook_endpoint": connect.id})["data"]
        assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]
        deliveries = sim.get(f"/sim/events/{undelivered.id}/deliveries")["data"]

    assert len(sent) == 1 and deliveries[-1]["state"] == "succeeded"
    assert client.v1.events.list({"type": COMPLETED, "delivery_success": False}, {"stripe_account": shop}).data == []


def test_each_account_has_its_own_dashboard_and_catalog_from_the_file(tmp_path: Path) -> None:
    catalog_file = tmp_path / "catalog.toml"
    catalog_file.write_text(
        '[products.prod_a]\ncross_sell = "prod_b"\n'
        '[accounts.acct_1Shop.account]\ndefault_tax_behavior = "inclusive"\n'
        '[accounts.acct_1Shop.products.prod_mug]\ncross_sell = "prod_coaster"\n', encoding="utf-8")
    config = SimConfig(catalog=load_catalog(catalog_file))
    with SimServer(config) as server, SimClient(server.url, API_KEY) as platform:
        platform.post("/v1/accounts", {"sim": {"id": "acct_1Shop"}})
        other = platform.post("/v1/accounts", {})["id"]
        with SimClient(server.url, API_KEY, account="acct_1Shop") as shop, \
                SimClient(server.url, API_KEY, account=other) as elsewhere:
            shop_dashboard = shop.get("/sim/account")
            other_dashboard = elsewhere.get("/sim/account")
            platform_dashboard = platform.get("/sim/account")

    assert shop_dashboard["cross_sells"] == {"prod_a": "prod_b", "prod_mug": "prod_coaster"}
    assert (shop_dashboard["account"], shop_dashboard["default_tax_behavior"]) == ("acct_1Shop", "inclusive")
    assert other_dashboard["cross_sells"] == platform_dashboard["cross_sells"] == {"prod_a": "prod_b"}
    assert platform_dashboard["account"] is None


@pytest.mark.parametrize(("params", "param"), [
    ({"type": "platinum"}, "type"), ({"country": "France"}, "country"), ({"sim": {"id": "shop"}}, "sim[id]"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_account_params_are_400(sim: SimClient, params: dict[str, Any], param: str) -> None:
    with pytest.raises(RemoteError) as caught:
        sim.post("/v1/accounts", params)

    assert caught.value.status == 400 and caught.value.body["error"]["param"] == param


def test_trigger_with_an_account_buys_from_that_accounts_catalog(
        sim_server: SimServer, client: stripe.StripeClient, endpoint: WebhookEndpoint) -> None:
    secret = client.v1.webhook_endpoints.create(
        {"url": endpoint.url, "enabled_events": [COMPLETED], "connect": True}).secret

    first = CliRunner().invoke(trigger, ["--account", "acct_1Demo", "--cross-sell", "--api-base", sim_server.url,
                                         "--json"], catch_exceptions=False)
    again = CliRunner().invoke(trigger, ["--account", "acct_1Demo", "--api-base", sim_server.url, "--json"],
                               catch_exceptions=False)
    [received] = endpoint.wait_for(lambda got: len(got) == 2)[:1]

    done = json.loads(first.output)
    assert first.exit_code == 0 and again.exit_code == 0
    assert (done["account"], done["line_items"]) == ("acct_1Demo", 2) and done["cross_sell_line_item"]
    event = stripe.Webhook.construct_event(received.body, received.signature, secret)
    assert event.account == "acct_1Demo" and event.data.object.id == done["session"]
    shop: Any = {"stripe_account": "acct_1Demo"}
    items = client.v1.checkout.sessions.line_items.list(done["session"], options=shop).data
    assert [i.price.product for i in items] == [PRO, DEPLOY]
    assert client.v1.products.list().data == []  # the platform's own catalog is untouched
    assert [a.id for a in client.v1.accounts.list().data] == ["acct_1Demo"]


def test_trigger_refuses_an_account_that_is_not_an_account_id(sim_server: SimServer) -> None:
    result = CliRunner().invoke(trigger, ["--account", "shop", "--api-base", sim_server.url])

    assert result.exit_code == 2 and "--account" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--webhook-connect"], "--webhook-connect needs --webhook-url"),
    (["--webhook-url", "http://127.0.0.1:9/hook", "--webhook-secret", "secret"], "must start with whsec_"),
])
def test_crossfill_sim_refuses_bad_webhook_options_with_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(sim, ["--port", "0", *args])

    assert result.exit_code == 2 and message in result.output


@pytest.mark.integration
def test_crossfill_sim_webhook_connect_delivers_both_kinds_to_one_url(endpoint: WebhookEndpoint) -> None:
    with sim_process("--webhook-url", endpoint.url, "--webhook-secret", "whsec_both", "--webhook-connect") as (_, url):
        shop = CliRunner().invoke(trigger, ["--account", "acct_1Both", "--api-base", url, "--json"],
                                  catch_exceptions=False)
        own = CliRunner().invoke(trigger, ["--api-base", url, "--json"], catch_exceptions=False)
        sessions = {json.loads(shop.output)["session"]: "acct_1Both", json.loads(own.output)["session"]: None}
        received = endpoint.wait_for(lambda got: sum(r.event["type"] == COMPLETED for r in got) == 2, timeout=30)

    completed = [stripe.Webhook.construct_event(r.body, r.signature, "whsec_both") for r in received
                 if r.event["type"] == COMPLETED]
    assert {e.data.object.id: e.to_dict().get("account") for e in completed} == sessions
