"""An order made of Stripe's own objects, read over HTTP by the real client, fulfils through decide().

Stripe's session fixture (made paid and complete) and line items built from its ``item``, ``price``
and ``product`` fixtures are served by a local HTTP server with Stripe's paths; the real
:class:`StripeClient` reads them; ``decide`` records the order in the real ledger (fakeredis); each
dispatched item then goes through the handler registry as fulfill_item does.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from fulfillment.catalog import parse_catalog
from fulfillment.errors import PermanentError
from fulfillment.handlers import FulfillmentRequest, HandlerRegistry
from fulfillment.ledger import CLAIMED, Ledger
from fulfillment.pipeline import COMPLETED, decide
from fulfillment.settings import Settings
from fulfillment.stats import UNKNOWN_VALUES, Stats
from fulfillment.stripe_api import StripeClient
from tests.contract.variants import complete, with_all_nulls
from tests.fixtures.stripe import fixture, problems
from tests.unit.fulfillment_fixtures import API_KEY, Reply, ScriptedServer, Seen, fake_redis

SESSION_ID = fixture("checkout.session")["id"]
SESSION_PATH = f"/v1/checkout/sessions/{SESSION_ID}"
TSHIRT = "prod_QXg1hqf4jFNsqG"  # the product of Stripe's fixtures
MUG = "prod_MugCrossSell"
CATALOG = parse_catalog({"products": {TSHIRT: {"name": "T-shirt", "cross_sell": MUG},
                                      MUG: {"name": "Mug"}}})


def paid_session() -> dict[str, Any]:
    session = fixture("checkout.session")
    session.update(status="complete", payment_status="paid", currency="usd", amount_total=3000)
    return session


def tshirt_item() -> dict[str, Any]:
    """Stripe's ``item`` fixture as published: ``metadata`` null, the product as an id."""
    return fixture("item")


def mug_item() -> dict[str, Any]:
    """A second item from Stripe's ``price`` and ``product`` fixtures, the product expanded."""
    item, price, product = fixture("item"), fixture("price"), fixture("product")
    product.update(id=MUG, name="Mug", description=None, url=None, tax_details=None)
    price.update(id="price_Mug", product=product, type="one_time", recurring=None, tax_behavior=None)
    item.update(id="li_Mug", price=price, description=None, quantity=1, amount_total=1000)
    return item


def no_price_item() -> dict[str, Any]:
    """Every nullable field of the item null, as the types allow: no price to classify."""
    item = with_all_nulls(complete("item"), "item")
    item["id"] = "li_NoPrice"
    return item


class StripeDouble:
    """Stripe's two read endpoints over HTTP, serving the documents the test puts in it."""

    def __init__(self, session: dict[str, Any], items: list[dict[str, Any]]) -> None:
        self.session, self.items = session, items

    def __call__(self, request: Seen) -> Reply:
        if request.path == SESSION_PATH:
            return Reply(200, copy.deepcopy(self.session))
        if request.path == SESSION_PATH + "/line_items":
            start = 0
            if "starting_after" in request.query:
                start = [item["id"] for item in self.items].index(request.query["starting_after"][0]) + 1
            limit = int(request.query.get("limit", ["10"])[0])
            page = self.items[start:start + limit]
            return Reply(200, {"object": "list", "data": copy.deepcopy(page),
                               "has_more": start + limit < len(self.items), "url": SESSION_PATH + "/line_items"})
        return Reply(404, {"error": {"type": "invalid_request_error", "message": f"No such path {request.path}"}})


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def client_for(base: str, http: requests.Session) -> StripeClient:
    settings = Settings(stripe_api_key=API_KEY, stripe_api_base=base, stripe_api_version="2026-10-28.endive")
    return StripeClient(settings, http=http)


def fulfil_dispatched(ledger: Ledger, dispatch: tuple[str, ...]) -> dict[str, str]:
    """What fulfill_item does for each item: claim, call its handler, record the result or the failure."""
    handlers, outcomes = HandlerRegistry(), {}
    for item_id in dispatch:
        claim = ledger.claim_item(SESSION_ID, item_id, lease_s=30)
        assert claim.outcome == CLAIMED
        item = ledger.item(SESSION_ID, item_id) or {}
        request = FulfillmentRequest(session_id=SESSION_ID, line_item_id=item_id, item=item,
                                     order=ledger.order_summary(SESSION_ID), attempt=claim.attempt)
        try:
            ledger.record_result(SESSION_ID, item_id, claim.token, handlers.get(item["handler"])(request, {}))
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
    with ScriptedServer(StripeDouble(paid_session(), [tshirt_item(), mug_item()])) as server:
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
    with ScriptedServer(StripeDouble(paid_session(), items)) as server:
        decision = decide(COMPLETED, SESSION_ID, client_for(server.url, http), ledger, CATALOG)

    outcomes = fulfil_dispatched(ledger, decision.dispatch)

    assert outcomes == {"li_1Pgc73B7WZ01zgkWx8kcmZPK": "done", "li_NoPrice": "failed: the line item has no price",
                        "li_Mug": "done"}
    order = ledger.order(SESSION_ID)
    assert order is not None and order["status"] == "partially_failed"
    assert order["items"][1]["error"] == "the line item has no price"


def test_an_order_over_many_pages_of_stripes_items(http: requests.Session) -> None:
    ledger = Ledger(fake_redis())
    items = []
    for number in range(23):
        item = tshirt_item()
        item["id"] = f"li_{number:03d}"
        items.append(item)
    with ScriptedServer(StripeDouble(paid_session(), items)) as server:
        decision = decide(COMPLETED, SESSION_ID, client_for(server.url, http), ledger, CATALOG)

    assert len(decision.dispatch) == 23
    assert set(fulfil_dispatched(ledger, decision.dispatch).values()) == {"done"}


def test_an_unknown_payment_status_of_a_real_session_is_not_fulfilled(http: requests.Session) -> None:
    ledger, stats = Ledger(fake_redis()), Stats(fake_redis())
    session = paid_session() | {"payment_status": "paid_in_instalments"}
    with ScriptedServer(StripeDouble(session, [tshirt_item()])) as server:
        decision = decide(COMPLETED, SESSION_ID, client_for(server.url, http), ledger, CATALOG, stats)

    assert (decision.order_status, decision.dispatch) == ("awaiting_payment", ())
    assert stats.read(UNKNOWN_VALUES) == {"payment_status": 1}
    assert json.dumps(ledger.order(SESSION_ID)).count("paid_in_instalments") == 1
