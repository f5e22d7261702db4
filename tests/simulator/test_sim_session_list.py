"""``GET /v1/checkout/sessions`` as Stripe serves it: its filters, newest first, expanded line items as
a first page, and the latency an expansion costs (``/sim/faults expand_latency_ms``)."""
from __future__ import annotations

import time
from typing import Any

import requests

from simulator import SimServer
from simulator.client import SimClient
from simulator.expansion import count_expanded, parse_expand
from simulator.store import LineItemSpec
from tests.support.simulator import API_KEY


def listed(server: SimServer, **params: Any) -> dict[str, Any]:
    answer = requests.get(f"{server.url}/v1/checkout/sessions", params=params,
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def paid_sessions(server: SimServer, count: int, items: int = 1) -> list[str]:
    store = server.simulator.store
    store.create_product(name="Mug", product_id="prod_mug")
    price = store.create_price(product="prod_mug", currency="usd", unit_amount=900)["id"]
    made = []
    for n in range(count):
        session = store.create_session(mode="payment", base_url=server.url, line_items=[LineItemSpec(price, 1)] * items)
        store.complete_session(session["id"], "paid", email=f"buyer{n}@example.com")
        made.append(session["id"])
    return made


def test_each_filter_finds_its_session(sim_server: SimServer) -> None:
    first, second = paid_sessions(sim_server, 2)
    record = sim_server.simulator.store.sessions[second]

    assert [s["id"] for s in listed(sim_server, status="complete")["data"]] == [second, first]  # newest first
    assert [s["id"] for s in listed(sim_server, payment_intent=record.payment_intent)["data"]] == [second]
    assert [s["id"] for s in listed(sim_server, **{"customer_details[email]": "buyer0@example.com"})["data"]] == [first]
    assert listed(sim_server, customer="cus_nobody")["data"] == []
    assert listed(sim_server, payment_link="plink_nothing")["data"] == []
    assert listed(sim_server, subscription="sub_nothing")["data"] == []
    assert listed(sim_server, status="open")["data"] == []
    assert len(listed(sim_server, **{"created[gte]": record.created, "created[lte]": record.created})["data"]) == 2


def test_a_list_is_sorted_by_created_newest_first(sim_server: SimServer) -> None:
    older, newer = paid_sessions(sim_server, 2)
    sessions = sim_server.simulator.store.sessions
    sessions[older].created, sessions[newer].created = 2_000, 1_000

    assert [s["id"] for s in listed(sim_server)["data"]] == [older, newer]


def test_expanded_line_items_are_a_first_page_with_has_more(sim_server: SimServer) -> None:
    [session_id] = paid_sessions(sim_server, 1, items=12)

    [session] = listed(sim_server, **{"expand[]": "data.line_items.data.price"})["data"]

    assert session["id"] == session_id
    assert len(session["line_items"]["data"]) == 10 and session["line_items"]["has_more"] is True
    assert isinstance(session["line_items"]["data"][0]["price"]["product"], str)


def test_deep_expansion_costs_latency_per_expanded_object(sim_server: SimServer, sim: SimClient) -> None:
    paid_sessions(sim_server, 5, items=2)
    sim.post("/sim/faults", {"expand_latency_ms": 20})
    try:
        started = time.monotonic()
        listed(sim_server)
        plain = time.monotonic() - started
        started = time.monotonic()
        listed(sim_server, **{"expand[]": "data.line_items.data.price"})
        deep = time.monotonic() - started
    finally:
        sim.delete("/sim/faults")

    # 5 line item lists + 10 items + 10 prices = 25 objects x 20 ms
    assert plain < 0.25 and deep >= 0.5


def test_count_expanded_counts_what_the_expansion_brought() -> None:
    expand = parse_expand(["data.line_items.data.price"], "list:checkout.session")
    item = {"id": "li_1", "price": {"id": "price_1", "product": "prod_1"}}
    body = {"object": "list", "data": [{"id": "cs_1", "line_items": {"object": "list", "data": [item, item]}}]}

    assert count_expanded(body, expand) == 5  # the list, two items, two prices
    assert count_expanded(body, parse_expand([], "list:checkout.session")) == 0


def test_a_fault_plan_can_strike_one_method_only(sim_server: SimServer, sim: SimClient) -> None:
    sim.post("/sim/faults", {"error_rate": 1, "path_prefix": "/v1/checkout/sessions", "method": "GET"})
    try:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        read = requests.get(f"{sim_server.url}/v1/checkout/sessions", headers=headers, timeout=10)
        created = requests.post(f"{sim_server.url}/v1/checkout/sessions", headers=headers, timeout=10,
                                data={"mode": "payment"})
    finally:
        sim.delete("/sim/faults")

    assert read.status_code == 500
    assert created.status_code == 400  # refused for its params, not struck by the fault
