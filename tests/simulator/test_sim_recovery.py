"""What reconciliation reads and the failures it recovers from: the Events and Sessions lists with
their filters, deliveries lost on the way, disabled endpoints."""
from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import stripe

from simulator import SimConfig, SimServer
from simulator.client import SimClient
from tests.support.simulator import API_KEY, Catalog, WebhookEndpoint

COMPLETED = "checkout.session.completed"
#: One retry, 3 s after a failure: time enough, on a busy machine, to look at (or change) what is
#: pending before the retry runs.
SLOW_RETRY = SimConfig(retry_base_ms=3000, retry_max_attempts=2, delivery_timeout_s=5.0, delivery_workers=4)


def _buy(client: stripe.StripeClient, sim: SimClient, price: str, *, outcome: str | None = "paid") -> str:
    session = client.v1.checkout.sessions.create({"mode": "payment", "line_items": [{"price": price, "quantity": 1}]})
    if outcome == "expired":
        sim.post(f"/sim/checkout/sessions/{session.id}/expire")
    elif outcome is not None:
        sim.post(f"/sim/checkout/sessions/{session.id}/complete", {"outcome": outcome})
    return session.id


def _ids(listed: Any) -> list[str]:
    return [item.id for item in listed.auto_paging_iter()]


def _raw_get(server: SimServer, path: str, query: str) -> requests.Response:
    return requests.get(f"{server.url}{path}?{query}", auth=(API_KEY, ""), timeout=10)


# -- the Events list ---------------------------------------------------------------------------------

def test_types_takes_up_to_twenty_names_and_type_takes_a_wildcard(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog) -> None:
    price = catalog.product("prod_events")
    _buy(client, sim, price, outcome="paid")
    _buy(client, sim, price, outcome="expired")
    names = [COMPLETED, "checkout.session.expired", *(f"checkout.session.other_{n}" for n in range(18))]

    checkout = client.v1.events.list({"type": "checkout.session.*"})
    by_names = client.v1.events.list({"types": names})
    all_sessions = client.v1.events.list({"type": "*.session.*"})
    nothing = client.v1.events.list({"type": "checkout.*.nothing"})

    assert [e.type for e in checkout.data] == ["checkout.session.expired", COMPLETED]
    assert [e.id for e in by_names.data] == [e.id for e in checkout.data]
    assert [e.id for e in all_sessions.data] == [e.id for e in checkout.data]
    assert nothing.data == []


@pytest.mark.parametrize(("query", "param"), [
    ("&".join(f"types[]=checkout.session.t{n}" for n in range(21)), "types"),
    ("type=checkout.session.completed&types[]=checkout.session.expired", "types"),
    ("type=checkout.session.completed'", "type"),
    ("created[after]=5", "created[after]"),
    ("created[gte]=soon", "created[gte]"),
    ("created=yesterday", "created"),
    ("delivery_success=maybe", "delivery_success"),
    ("limit=101", "limit"),
    ("starting_after=evt_missing", "starting_after"),
    ("colour=blue", "colour"),
])
def test_bad_event_filters_are_stripes_400(sim_server: SimServer, query: str, param: str) -> None:
    response = _raw_get(sim_server, "/v1/events", query)

    error = response.json()["error"]
    assert response.status_code == 400
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert error["message"]


def test_created_filters_by_range_and_exact_time(client: stripe.StripeClient, catalog: Catalog) -> None:
    catalog.product("prod_early")
    early = client.v1.events.list({"limit": 1}).data[0]
    while int(time.time()) <= early.created:  # the next event must fall in a later second
        time.sleep(0.05)
    catalog.product("prod_late")
    events = client.v1.events.list({"limit": 100}).data
    late = [e for e in events if e.created > early.created]

    after = _ids(client.v1.events.list({"created": {"gt": early.created}}))
    at_most = _ids(client.v1.events.list({"created": {"lte": early.created}}))
    exactly = _ids(client.v1.events.list({"created": early.created}))
    between = _ids(client.v1.events.list({"created": {"gte": early.created, "lt": early.created + 1}}))

    assert after == [e.id for e in late] and len(late) == 2  # product.created + price.created
    assert early.id in at_most and not set(at_most) & set(after)
    assert early.id in exactly and set(exactly) == set(between) <= set(at_most)


def test_paging_backwards_with_ending_before(client: stripe.StripeClient, catalog: Catalog) -> None:
    for n in range(5):
        catalog.product(f"prod_back_{n}")
    newest_first = _ids(client.v1.events.list({"type": "product.created", "limit": 100}))

    before_oldest = client.v1.events.list({"type": "product.created", "ending_before": newest_first[-1], "limit": 2})

    assert [e.id for e in before_oldest.data] == newest_first[2:4] and before_oldest.has_more is True


def test_delivery_success_false_lists_events_pending_or_failed_at_some_endpoint(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    # Given two endpoints, one of which fails every delivery of the second purchase
    flaky = WebhookEndpoint()
    try:
        client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": [COMPLETED]})
        client.v1.webhook_endpoints.create({"url": flaky.url, "enabled_events": [COMPLETED]})
        price = catalog.product("prod_delivery")
        delivered = _buy(client, sim, price)
        assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]
        flaky.default_status = 500
        failed = _buy(client, sim, price)
        # When every attempt has been made
        assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]

        undelivered = client.v1.events.list({"type": COMPLETED, "delivery_success": False}).data
        ok = client.v1.events.list({"type": COMPLETED, "delivery_success": True}).data
    finally:
        flaky.stop()

    # Then only the event one endpoint never acknowledged is undelivered
    assert [e.data.object.id for e in undelivered] == [failed]
    assert [e.data.object.id for e in ok] == [delivered]
    assert undelivered[0].pending_webhooks == 0  # given up: no longer pending, yet not delivered


@pytest.mark.parametrize("sim_config", [SLOW_RETRY])
def test_an_event_still_being_retried_is_undelivered(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    endpoint.default_status = 503
    client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": [COMPLETED]})
    session_id = _buy(client, sim, catalog.product("prod_pending"))
    endpoint.wait_for(lambda got: len(got) >= 1)

    [event] = client.v1.events.list({"type": COMPLETED, "delivery_success": False}).data

    assert event.data.object.id == session_id
    endpoint.default_status = 200
    assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]
    assert client.v1.events.list({"type": COMPLETED, "delivery_success": False}).data == []


# -- the Checkout Sessions list ----------------------------------------------------------------------

def test_sessions_list_filters_by_status_and_created_and_pages(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog) -> None:
    price = catalog.product("prod_sessions")
    complete = [_buy(client, sim, price) for _ in range(3)]
    expired = _buy(client, sim, price, outcome="expired")
    still_open = _buy(client, sim, price, outcome=None)
    first = client.v1.checkout.sessions.retrieve(complete[0])

    done = _ids(client.v1.checkout.sessions.list({"status": "complete", "limit": 2}))
    since = _ids(client.v1.checkout.sessions.list({"created": {"gte": first.created}, "limit": 2}))
    before = _ids(client.v1.checkout.sessions.list({"created": {"lt": first.created}}))
    open_ones = _ids(client.v1.checkout.sessions.list({"status": "open"}))

    assert done == list(reversed(complete))  # newest first, over two pages
    assert since == [still_open, expired, *reversed(complete)]
    assert before == [] and open_ones == [still_open]


@pytest.mark.parametrize(("query", "param"), [
    ("status=done", "status"), ("created[gte]=", "created[gte]"), ("created[since]=1", "created[since]"),
    ("customer_email=x", "customer_email"),
])
def test_bad_session_filters_are_stripes_400(sim_server: SimServer, query: str, param: str) -> None:
    response = _raw_get(sim_server, "/v1/checkout/sessions", query)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


# -- lost deliveries and disabled endpoints ----------------------------------------------------------

def test_dropped_deliveries_never_arrive_and_are_never_retried(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": [COMPLETED]})
    price = catalog.product("prod_lossy")
    sim.post("/sim/faults", {"webhook_drop_rate": 0.5, "seed": 7})

    sessions = [_buy(client, sim, price) for _ in range(30)]
    assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]
    events = client.v1.events.list({"type": COMPLETED, "limit": 100}).data
    states = {e.data.object.id: [d["state"] for d in sim.get(f"/sim/events/{e.id}/deliveries")["data"]]
              for e in events}
    arrived = [r.event["data"]["object"]["id"] for r in endpoint.received]

    dropped = [sid for sid, seen in states.items() if seen == ["dropped"]]
    assert 5 <= len(dropped) <= 25  # about half of 30
    assert sorted(arrived) == sorted(set(sessions) - set(dropped))  # each other one exactly once
    assert all(seen in (["dropped"], ["succeeded"]) for seen in states.values())
    # Stripe believes a lost delivery was acknowledged: only a full scan of the events finds it.
    assert client.v1.events.list({"type": COMPLETED, "delivery_success": False}).data == []
    assert sim.get("/sim/faults")["webhook_drop_rate"] == 0.5


@pytest.mark.parametrize("rate", ["-0.1", "1.5", "often"])
def test_a_drop_rate_outside_zero_to_one_is_400(sim: SimClient, rate: str) -> None:
    from simulator.errors import RemoteError

    with pytest.raises(RemoteError) as caught:
        sim.post("/sim/faults", {"webhook_drop_rate": rate})

    assert caught.value.status == 400 and caught.value.body["error"]["param"] == "webhook_drop_rate"


def test_a_disabled_endpoint_gets_nothing_until_enabled_again(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    created = client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": [COMPLETED]})
    price = catalog.product("prod_disabled")

    disabled = client.v1.webhook_endpoints.update(created.id, {"disabled": True})
    missed = _buy(client, sim, price)
    assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]
    nothing = list(endpoint.received)
    enabled = client.v1.webhook_endpoints.update(created.id, {"disabled": False})
    later = _buy(client, sim, price)
    [received] = endpoint.wait_for(lambda got: len(got) == 1)

    assert (disabled.status, enabled.status) == ("disabled", "enabled")
    assert client.v1.webhook_endpoints.retrieve(created.id).status == "enabled"
    assert nothing == [] and received.event["data"]["object"]["id"] == later
    missed_event = next(e for e in client.v1.events.list({"type": COMPLETED}).data if e.data.object.id == missed)
    assert sim.get(f"/sim/events/{missed_event.id}/deliveries")["data"] == []


@pytest.mark.parametrize("sim_config", [SLOW_RETRY])
def test_disabling_an_endpoint_stops_its_pending_retries(
        client: stripe.StripeClient, sim: SimClient, catalog: Catalog, endpoint: WebhookEndpoint) -> None:
    endpoint.default_status = 500
    created = client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": [COMPLETED]})
    _buy(client, sim, catalog.product("prod_retrying"))
    endpoint.wait_for(lambda got: len(got) >= 1)

    client.v1.webhook_endpoints.update(created.id, {"disabled": True})
    assert sim.post("/sim/deliveries/wait", {"timeout_s": 30})["idle"]
    event = client.v1.events.list({"type": COMPLETED}).data[0]
    [delivery] = sim.get(f"/sim/events/{event.id}/deliveries")["data"]

    assert delivery["state"] == "failed" and len(delivery["attempts"]) == 1  # the retry found it disabled
    assert client.v1.events.list({"type": COMPLETED, "delivery_success": False}).data[0].id == event.id


def test_a_bad_disabled_value_is_400(client: stripe.StripeClient, endpoint: WebhookEndpoint) -> None:
    created = client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": [COMPLETED]})

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.webhook_endpoints.update(created.id, {"disabled": "sometimes"})  # type: ignore[typeddict-item]

    assert caught.value.param == "disabled"
