"""Batched session reads decide every order exactly as single retrieves do.

Two readers of one API: the single path (``GET /v1/checkout/sessions/{id}`` with
``line_items.data.price.product`` expanded) and the batch (``GET /v1/checkout/sessions`` with
``data.line_items.data.price``, product names from the cache, the rest of a long order from
``…/line_items``). Each decides into its own ledger (fakeredis); the orders must be equal, on
Stripe's own fixtures (a scripted HTTP server) and on the simulator (random sessions, hypothesis).
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulfillment.batching import session_created
from fulfillment.catalog import Catalog, parse_catalog
from fulfillment.events import COMPLETED
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.pipeline import decide
from fulfillment.ratelimit import endpoint_of
from fulfillment.records import Order, OrderItem
from fulfillment.settings import StripeSettings
from fulfillment.stripe_api import LIST_EXPAND, StripeClient
from simulator import SimConfig, SimServer
from simulator.store import LineItemSpec
from tests.fixtures.stripe import fixture
from tests.support.fulfillment_fixtures import API_KEY, Reply, ScriptedServer, Seen, fake_redis


def client_for(base: str, http: requests.Session) -> StripeClient:
    return StripeClient(StripeSettings(api_key=API_KEY, api_base=base, connect_timeout=1, read_timeout=5), http=http)


def without_times(value: Any) -> Any:
    """An order record without the moments it was written (two ledgers write at different times)."""
    if isinstance(value, Order | OrderItem):
        return without_times(value.to_dict())
    if isinstance(value, dict):
        return {key: without_times(item) for key, item in value.items() if not key.endswith("_at")}
    if isinstance(value, list):
        return [without_times(item) for item in value]
    return value


def orders_both_ways(client: StripeClient, sessions: dict[str, int], catalog: Catalog) -> tuple[list[Any], list[Any]]:
    """Decide every session of *sessions* (id → created) once retrieved alone, once read in a batch."""
    single, batched = Ledger(fake_redis()), Ledger(fake_redis())
    for session_id in sessions:
        decide(COMPLETED, session_id, client, single, catalog)
    read = client.read_sessions(set(sessions), created_gte=min(sessions.values()), created_lte=max(sessions.values()))
    assert set(read) == set(sessions)  # every session was in the pages read
    for session_id in sessions:
        decide(COMPLETED, session_id, client, batched, catalog, session=read[session_id])
    return ([without_times(single.order(sid)) for sid in sessions],
            [without_times(batched.order(sid)) for sid in sessions])


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


# --- Stripe's fixtures, served as Stripe pages and expands them ---------------------------------------------

class FixtureApi:
    """Sessions built from Stripe's published objects, answered per expansion as Stripe would."""

    def __init__(self) -> None:
        self.product = fixture("product")
        self.sessions: dict[str, dict[str, Any]] = {}
        self.items: dict[str, list[dict[str, Any]]] = {}

    def add(self, session_id: str, created: int, items: int, *, payment_status: str = "paid") -> None:
        session = fixture("checkout.session")
        session.update(id=session_id, created=created, status="complete", payment_status=payment_status,
                       currency="usd", url=None)
        session.pop("line_items", None)
        self.sessions[session_id] = session
        self.items[session_id] = []
        for n in range(items):
            item = fixture("item")
            item["id"] = f"li_{session_id[-4:]}{n:03d}"
            item["quantity"] = 1 + n % 3
            item["price"] = {**item["price"], "recurring": None, "type": "one_time", "product": self.product["id"]}
            self.items[session_id].append(item)

    def items_json(self, session_id: str, start: int, limit: int, product: bool) -> dict[str, Any]:
        chosen = copy.deepcopy(self.items[session_id][start:start + limit])
        if product:
            for item in chosen:
                item["price"]["product"] = copy.deepcopy(self.product)
        return {"object": "list", "data": chosen, "has_more": start + limit < len(self.items[session_id]),
                "url": f"/v1/checkout/sessions/{session_id}/line_items"}

    def answer(self, request: Seen) -> Reply:
        path, query = request.path, request.query
        expand = query.get("expand[]", [])
        if path == "/v1/checkout/sessions":
            assert expand == [LIST_EXPAND] and query["status"] == ["complete"]
            low, high = int(query["created[gte]"][0]), int(query["created[lte]"][0])
            listed = sorted((s for s in self.sessions.values() if low <= s["created"] <= high),
                            key=lambda s: -s["created"])
            start = 0
            if "starting_after" in query:
                start = [s["id"] for s in listed].index(query["starting_after"][0]) + 1
            limit = int(query["limit"][0])
            data = [{**copy.deepcopy(s), "line_items": self.items_json(s["id"], 0, 10, product=False)}
                    for s in listed[start:start + limit]]
            return Reply(200, {"object": "list", "data": data, "has_more": start + limit < len(listed),
                               "url": path})
        if path.startswith("/v1/products/"):
            return Reply(200, self.product)
        session_id = path.split("/")[4]
        if path.endswith("/line_items"):
            start = 0
            if "starting_after" in query:
                start = [i["id"] for i in self.items[session_id]].index(query["starting_after"][0]) + 1
            return Reply(200, self.items_json(session_id, start, int(query["limit"][0]), product=True))
        assert expand == ["line_items.data.price.product"]
        return Reply(200, {**self.sessions[session_id], "line_items": self.items_json(session_id, 0, 10, True)})


def test_batched_and_single_reads_make_the_same_orders_on_stripes_fixtures(http: requests.Session) -> None:
    # Given Stripe's own session and item objects: orders of 1, 3, 10, 12 and 25 items, one unpaid
    api = FixtureApi()
    sizes = {"cs_test_fx0001": 1, "cs_test_fx0002": 3, "cs_test_fx0003": 10, "cs_test_fx0004": 12,
             "cs_test_fx0005": 25}
    for n, (session_id, size) in enumerate(sizes.items()):
        api.add(session_id, 1_700_000_000 + n, size)
    api.add("cs_test_fx0006", 1_700_000_009, 2, payment_status="unpaid")
    catalog = parse_catalog({"products": {api.product["id"]: {"name": "catalog name"}}})

    # When each is decided from a retrieve, and again from one batch read
    with ScriptedServer(api.answer) as server:
        single, batched = orders_both_ways(client_for(server.url, http),
                                           {sid: s["created"] for sid, s in api.sessions.items()}, catalog)
        lists = [seen for seen in server.seen if seen.path == "/v1/checkout/sessions"]
        products = [seen for seen in server.seen if seen.path.startswith("/v1/products/")]

    # Then the orders are the same, items > 10 complete, product names from the (one) product read
    assert batched == single
    assert [len(order["items"]) for order in single[:5]] == [1, 3, 10, 12, 25]
    assert {item["product_name"] for item in single[4]["items"]} == {api.product["name"]}
    assert single[5]["status"] == "awaiting_payment"
    assert len(lists) == 1 and len(products) == 1


def test_a_batch_pages_until_it_has_seen_every_session_it_wants(http: requests.Session) -> None:
    # Given 250 complete sessions in the window, of which the batch wants the oldest and the newest
    api = FixtureApi()
    for n in range(250):
        api.add(f"cs_test_pg{n:04d}", 1_700_000_000 + n, 1)
    wanted = {"cs_test_pg0000": 1_700_000_000, "cs_test_pg0249": 1_700_000_249}

    with ScriptedServer(api.answer) as server:
        found = client_for(server.url, http).read_sessions(wanted, created_gte=1_700_000_000,
                                                           created_lte=1_700_000_249)
        pages = [seen.query.get("starting_after") for seen in server.seen if seen.path == "/v1/checkout/sessions"]

    # Then it read the three pages (newest first) and found both
    assert set(found) == set(wanted)
    assert pages == [None, ["cs_test_pg0150"], ["cs_test_pg0050"]]


def test_the_list_endpoint_is_an_endpoint_of_its_own_for_the_limiter() -> None:
    assert endpoint_of("GET", "/v1/checkout/sessions") == "GET /v1/checkout/sessions"
    assert endpoint_of("GET", "/v1/checkout/sessions") != endpoint_of("GET", "/v1/checkout/sessions/cs_test_a1")


def test_session_created_reads_the_snapshot_and_tolerates_anything_else() -> None:
    body = json.dumps({"id": "evt_1", "created": 5, "data": {"object": {"id": "cs_test_1", "created": 42}}})
    assert session_created(body) == 42
    assert session_created("{}") is None and session_created("not json") is None
    assert session_created(json.dumps({"data": {"object": {"created": True}}})) is None


# --- the inbox claims an account's waiting events ------------------------------------------------------------

def test_taking_an_event_claims_waiting_events_of_its_account_and_types() -> None:
    inbox = Inbox(fake_redis())
    for n, (kind, account) in enumerate([(COMPLETED, None), (COMPLETED, None), ("checkout.session.expired", None),
                                         (COMPLETED, "acct_1Other"), (COMPLETED, None)]):
        inbox.record(f"evt_{n}", kind, f"cs_test_{n}", "{}", queue="events", message="m", account=account,
                     now=1000.0 + n)

    old, claimed = inbox.take("evt_0", batch=99, types=(COMPLETED,), now=2000.0)

    assert old == "enqueued"
    assert [one.id for one in claimed] == ["evt_1", "evt_4"]  # not the expired one, not another account's
    assert inbox.get("evt_1").status == "processing" and inbox.get("evt_1").batch_until == 2000.0 + 20
    assert inbox.get("evt_0").batch_until == 0.0
    assert inbox.take("evt_2", batch=99, types=(COMPLETED,))[1] == []  # nothing left to claim
    assert inbox.release("evt_1") and inbox.get("evt_1").status == "enqueued" and not inbox.get("evt_1").batch_until


# --- the simulator: random sessions, property test -------------------------------------------------------------

PRODUCTS = ("prod_pro", "prod_deploy", "prod_mug", "prod_cap")


@pytest.fixture(scope="module")
def sim_store() -> Iterator[tuple[SimServer, dict[str, str]]]:
    with SimServer(SimConfig()) as server:
        store = server.simulator.store
        prices = {}
        for n, product in enumerate(PRODUCTS):
            store.create_product(name=f"{product} name", product_id=product)
            prices[product] = store.create_price(product=product, currency="usd", unit_amount=500 + n,
                                                 tax_behavior="exclusive")["id"]
        yield server, prices


CATALOG = parse_catalog({"products": {"prod_pro": {"cross_sell": "prod_deploy"}, "prod_mug": {"name": "Mug"}}})

orders = st.lists(st.tuples(st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=15),
                            st.integers(min_value=1, max_value=4),
                            st.sampled_from(["paid", "no_payment_required", "async_pending"])),
                  min_size=1, max_size=6)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orders=orders)
def test_batched_and_single_reads_make_the_same_orders_on_the_simulator(
        orders: list[tuple[list[str], int, str]], sim_store: tuple[SimServer, dict[str, str]]) -> None:
    server, prices = sim_store
    store = server.simulator.store
    created = {}
    for products, quantity, outcome in orders:
        session = store.create_session(mode="payment", base_url=server.url,
                                       line_items=[LineItemSpec(prices[p], quantity) for p in products])
        store.complete_session(session["id"], outcome)
        created[session["id"]] = store.sessions[session["id"]].created
    with requests.Session() as http:
        single, batched = orders_both_ways(client_for(server.url, http), created, CATALOG)
    assert batched == single
    for (products, _, outcome), order in zip(orders, single, strict=True):
        if outcome != "async_pending":
            assert len(order["items"]) == len(products)


def test_the_simulator_refuses_a_fifth_level_and_serves_the_fourth(sim_store: tuple[SimServer, dict[str, str]]) -> None:
    server, _ = sim_store
    headers = {"Authorization": f"Bearer {API_KEY}"}
    deep = requests.get(f"{server.url}/v1/checkout/sessions", headers=headers,
                        params={"expand[]": "data.line_items.data.price.product"}, timeout=5)
    assert deep.status_code == 400 and "more than 4 levels" in deep.json()["error"]["message"]
    ok = requests.get(f"{server.url}/v1/checkout/sessions", headers=headers,
                      params={"expand[]": LIST_EXPAND, "limit": 1}, timeout=5)
    assert ok.status_code == 200
    parts = urlsplit(ok.json()["url"])
    assert parts.path == "/v1/checkout/sessions" and not parse_qs(parts.query)
