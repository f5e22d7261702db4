"""An order made of Stripe's own objects, read over HTTP by the real client, fulfils through decide().

Stripe's session fixture (made paid and complete) and line items built from its ``item``, ``price``
and ``product`` fixtures are served by a local HTTP server with Stripe's paths; the real
:class:`StripeClient` reads them; ``decide`` records the order in the real ledger (fakeredis); each
dispatched item then goes through the handler registry as fulfill_item does.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from fulfillment.catalog import parse_catalog
from fulfillment.errors import PermanentError
from fulfillment.events import COMPLETED
from fulfillment.handlers import FulfillmentRequest, HandlerRegistry
from fulfillment.ledger import CLAIMED, Ledger
from fulfillment.pipeline import decide
from fulfillment.settings import StripeSettings
from fulfillment.stats import STRIPE_API_CALLS, STRIPE_ORDERS_READ, UNKNOWN_VALUES, Stats
from fulfillment.stripe_api import StripeClient
from tests.contract.stripe_double import LINE_ITEMS_ENDPOINT, SESSION_ENDPOINT, StripeDouble
from tests.contract.variants import MUG, TSHIRT, mug_item, no_price_item, paid_session, tshirt_item
from tests.fixtures.stripe import fixture, problems
from tests.support.fulfillment_fixtures import API_KEY, fake_redis

SESSION_ID = fixture("checkout.session")["id"]
CATALOG = parse_catalog({"products": {TSHIRT: {"name": "T-shirt", "cross_sell": MUG},
                                      MUG: {"name": "Mug"}}})


def double_with(session: dict[str, Any], items: list[dict[str, Any]], *, embed: bool = True) -> StripeDouble:
    double = StripeDouble(embed=embed)
    double.put(session, items)
    return double


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def client_for(base: str, http: requests.Session, stats: Stats | None = None) -> StripeClient:
    settings = StripeSettings(api_key=API_KEY, api_base=base, api_version="2026-10-28.endive")
    return StripeClient(settings, http=http, stats=stats)


def fulfil_dispatched(ledger: Ledger, dispatch: tuple[str, ...]) -> dict[str, str]:
    """What fulfill_item does for each item: claim, call its handler, record the result or the failure."""
    handlers, outcomes = HandlerRegistry(), {}
    for item_id in dispatch:
        claim = ledger.claim_item(SESSION_ID, item_id, lease_s=30)
        assert claim.outcome == CLAIMED
        item = ledger.item(SESSION_ID, item_id)
        assert item is not None
        request = FulfillmentRequest(session_id=SESSION_ID, line_item_id=item_id, item=item,
                                     order=ledger.order_summary(SESSION_ID), attempt=claim.attempt)
        try:
            ledger.record_result(SESSION_ID, item_id, claim.token, handlers.get(str(item.handler))(request, {}))
            outcomes[item_id] = "done"
        except PermanentError as error:
            ledger.record_failure(SESSION_ID, item_id, claim.token, str(error))
            outcomes[item_id] = f"failed: {error}"
    return outcomes


def test_the_documents_are_what_stripe_may_send() -> None:
    assert problems(tshirt_item(), "item") == []
    assert problems(mug_item(), "item") == []
    assert problems(no_price_item(), "item") == []
    assert problems(paid_session(), "checkout.session", strict=False) == [
        "checkout.session.allowed_payment_method_types: missing (always present in 2026-10-28.endive)"]


def test_an_order_of_stripes_own_objects_is_fulfilled(http: requests.Session) -> None:
    ledger = Ledger(fake_redis())
    with double_with(paid_session(), [tshirt_item(), mug_item()]).serve() as server:
        decision = decide(COMPLETED, SESSION_ID, client_for(server.url, http), ledger, CATALOG)

    assert decision.order_status == "fulfilling"
    assert fulfil_dispatched(ledger, decision.dispatch) == {"li_1Pgc73B7WZ01zgkWx8kcmZPK": "done", "li_Mug": "done"}
    order = ledger.order(SESSION_ID)
    assert order is not None and order["status"] == "fulfilled"
    assert [(item["product"], item["product_name"], item["cross_sell"]) for item in order["items"]] == [
        (TSHIRT, "T-shirt", False), (MUG, "Mug", True)]


def test_an_item_without_a_price_fails_alone_and_the_rest_is_fulfilled(http: requests.Session) -> None:
    ledger = Ledger(fake_redis())
    items = [tshirt_item(), no_price_item(), mug_item()]
    with double_with(paid_session(), items).serve() as server:
        decision = decide(COMPLETED, SESSION_ID, client_for(server.url, http), ledger, CATALOG)

    outcomes = fulfil_dispatched(ledger, decision.dispatch)

    assert outcomes == {"li_1Pgc73B7WZ01zgkWx8kcmZPK": "done", "li_NoPrice": "failed: the line item has no price",
                        "li_Mug": "done"}
    order = ledger.order(SESSION_ID)
    assert order is not None and order["status"] == "partially_failed"
    assert order["items"][1]["error"] == "the line item has no price"


def test_an_order_over_many_pages_of_stripes_items(http: requests.Session) -> None:
    ledger = Ledger(fake_redis())
    items = [tshirt_item(f"li_{number:03d}") for number in range(23)]
    with double_with(paid_session(), items).serve() as server:
        decision = decide(COMPLETED, SESSION_ID, client_for(server.url, http), ledger, CATALOG)

    assert len(decision.dispatch) == 23
    assert set(fulfil_dispatched(ledger, decision.dispatch).values()) == {"done"}


def test_an_unknown_payment_status_of_a_real_session_is_not_fulfilled(http: requests.Session) -> None:
    ledger, stats = Ledger(fake_redis()), Stats(fake_redis())
    session = paid_session() | {"payment_status": "paid_in_instalments"}
    with double_with(session, [tshirt_item()]).serve() as server:
        decision = decide(COMPLETED, SESSION_ID, client_for(server.url, http, stats), ledger, CATALOG)

    assert (decision.order_status, decision.dispatch) == ("awaiting_payment", ())
    assert stats.read(UNKNOWN_VALUES) == {"payment_status": 1}
    order = ledger.order(SESSION_ID)
    assert order is not None and json.dumps(order.to_dict()).count("paid_in_instalments") == 1


# --- one API call per order --------------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "embed", "calls"), [
    (2, True, {SESSION_ENDPOINT: 1}),
    (10, True, {SESSION_ENDPOINT: 1}),
    (11, True, {SESSION_ENDPOINT: 1, LINE_ITEMS_ENDPOINT: 1}),
    (110, True, {SESSION_ENDPOINT: 1, LINE_ITEMS_ENDPOINT: 1}),
    (111, True, {SESSION_ENDPOINT: 1, LINE_ITEMS_ENDPOINT: 2}),
    # an API that does not embed them (the simulator before nested expand): every item from the list
    (2, False, {SESSION_ENDPOINT: 1, LINE_ITEMS_ENDPOINT: 1}),
    (101, False, {SESSION_ENDPOINT: 1, LINE_ITEMS_ENDPOINT: 2}),
], ids=lambda value: str(value) if not isinstance(value, dict) else "")
def test_an_order_costs_one_call_unless_it_has_more_items_than_the_session_embeds(
        count: int, embed: bool, calls: dict[str, int], http: requests.Session) -> None:
    ledger, stats = Ledger(fake_redis()), Stats(fake_redis())
    items = [tshirt_item(f"li_{number:03d}") for number in range(count)]
    double = double_with(paid_session(), items, embed=embed)
    with double.serve() as server:
        decision = decide(COMPLETED, SESSION_ID, client_for(server.url, http, stats), ledger, CATALOG)

    # every item, once, in Stripe's order
    assert decision.dispatch == tuple(item["id"] for item in items)
    assert dict(double.calls) == calls
    assert double.expands == [["line_items.data.price.product"]]
    # and /metrics counts what was sent
    assert stats.read(STRIPE_API_CALLS) == calls
    assert stats.read(STRIPE_ORDERS_READ) == {"": 1}


def test_the_list_continues_after_the_last_embedded_item(http: requests.Session) -> None:
    items = [tshirt_item(f"li_{number:03d}") for number in range(12)]
    double = double_with(paid_session(), items)
    with double.serve() as server:
        found = list(client_for(server.url, http).line_items(client_for(server.url, http).retrieve_session(
            SESSION_ID)))
        listed = [seen.query for seen in server.seen if seen.path.endswith("/line_items")]

    assert [item.id for item in found] == [item["id"] for item in items]
    assert listed == [{"limit": ["100"], "expand[]": ["data.price.product"], "starting_after": ["li_009"]}]


def test_an_unpaid_session_costs_one_call_too(http: requests.Session) -> None:
    ledger, stats = Ledger(fake_redis()), Stats(fake_redis())
    double = double_with(fixture("checkout.session"), [tshirt_item()])
    with double.serve() as server:
        decision = decide(COMPLETED, SESSION_ID, client_for(server.url, http, stats), ledger, CATALOG)

    assert (decision.order_status, dict(double.calls)) == ("awaiting_payment", {SESSION_ENDPOINT: 1})
