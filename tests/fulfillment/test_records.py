"""The records (fulfillment/records.py) against the shapes users and stored data already have.

The literals below are what crossfill printed and stored before orders became records (captured
from ``crossfill order --json``, the ``http`` handler's body and the ledger's Redis hashes): they
must not change, and what is already stored must read back.
"""
from __future__ import annotations

import json
from typing import Any

from fulfillment.catalog import parse_catalog
from fulfillment.ledger import Ledger
from fulfillment.orders import classify_items, order_summary
from fulfillment.records import Order, OrderItem
from fulfillment.schemas import LineItem
from tests.support.fulfillment_fixtures import fake_redis, make_item, make_session

SID = "cs_test_1"
CATALOG = parse_catalog({"account": {"default_tax_behavior": "unspecified"}, "defaults": {"handler": "log"},
                         "products": {"prod_pro": {"name": "Pro", "cross_sell": "prod_deploy"},
                                      "prod_deploy": {"name": "Deploy"}}})
#: What the ledger stored for an order's summary and its items (the hashes' ``data``), before and after.
STORED_ORDER = {"mode": "payment", "payment_status": "paid", "currency": "usd", "amount_total": 4500,
                "customer": "j***@example.com", "client_reference_id": None, "livemode": False, "item_count": 3,
                "cross_sell_count": 1, "anomalies": [{"item": "li_2", "anomalies": ["quantity"]}],
                "account": "acct_1Shop"}
STORED_ITEMS = [
    {"id": "li_1", "position": 0, "product": "prod_pro", "product_name": "Pro", "price": "price_prod_pro",
     "description": "prod_pro", "quantity": 1, "currency": "usd", "amount_total": 1500, "cross_sell": False,
     "cross_sold_by": None, "anomalies": [], "handler": "log"},
    {"id": "li_2", "position": 1, "product": "prod_deploy", "product_name": "Deploy", "price": "price_prod_deploy",
     "description": "prod_deploy", "quantity": 2, "currency": "usd", "amount_total": 3000, "cross_sell": True,
     "cross_sold_by": "prod_pro", "anomalies": ["quantity"], "handler": "log"},
    {"id": "li_3", "position": 2, "product": None, "product_name": "", "price": None, "description": "x",
     "quantity": 1, "currency": "usd", "amount_total": 0, "cross_sell": False, "cross_sold_by": None,
     "anomalies": [], "handler": "unfulfillable", "problem": "no price"},
]
#: ``crossfill order --json`` of that order once li_1 is done and li_3 failed (times left out).
PRINTED = {
    "session_id": SID, "status": "fulfilling", **STORED_ORDER,
    "items": [
        {**STORED_ITEMS[0], "status": "done", "attempts": 1, "result": {"ok": True}, "error": None},
        {**STORED_ITEMS[1], "status": "pending", "attempts": 0, "result": None, "error": None},
        {**STORED_ITEMS[2], "status": "failed", "attempts": 1, "result": None, "error": "PermanentError: no price"},
    ],
}
TIMES = ("created_at", "updated_at", "started_at", "finished_at")


def classified() -> tuple[Order, list[OrderItem]]:
    session = make_session(SID)
    broken = LineItem(id="li_3", price=None, quantity=1, currency="usd", amount_subtotal=0, amount_total=0,
                      description="x", problem="no price")
    items = classify_items(session, [make_item("li_1", "prod_pro"), make_item("li_2", "prod_deploy", quantity=2),
                                     broken], CATALOG)
    return order_summary(session, items, account="acct_1Shop"), items


def run(ledger: Ledger) -> None:
    claim = ledger.claim_item(SID, "li_1", lease_s=60)
    ledger.record_result(SID, "li_1", claim.token, {"ok": True})
    claim = ledger.claim_item(SID, "li_3", lease_s=60)
    ledger.record_failure(SID, "li_3", claim.token, "PermanentError: no price")


def without_times(shown: dict[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in shown.items() if key not in TIMES}
    if "items" in kept:
        kept["items"] = [without_times(item) for item in kept["items"]]
    return kept


def test_the_ledger_stores_the_shape_it_stored_before() -> None:
    client = fake_redis()
    order, items = classified()

    Ledger(client).open_order(SID, order, items)

    assert json.loads(client.hget(f"crossfill:order:{SID}", "data")) == STORED_ORDER
    assert [json.loads(client.hget(f"crossfill:item:{SID}:{item.id}", "data")) for item in items] == STORED_ITEMS


def test_an_order_prints_as_it_did() -> None:
    ledger = Ledger(fake_redis())
    order, items = classified()
    ledger.open_order(SID, order, items)
    run(ledger)

    found = ledger.order(SID)

    assert found is not None
    shown = found.to_dict()
    assert json.dumps(without_times(shown)) == json.dumps(PRINTED)  # same keys, same order
    assert all(isinstance(shown[key], float) for key in ("created_at", "updated_at"))


def test_an_order_stored_before_the_records_reads_back() -> None:
    # Given an order written to Redis the way the ledger wrote it before (hash fields and JSON by hand)
    client = fake_redis()
    client.hset(f"crossfill:order:{SID}", mapping={"status": "fulfilling", "created_at": "1.5", "updated_at": "2.5",
                                                  "data": json.dumps(STORED_ORDER)})
    states = [{"status": "done", "attempts": "1", "result": json.dumps({"ok": True})},
              {"status": "pending", "attempts": "0"},
              {"status": "failed", "attempts": "1", "error": "PermanentError: no price"}]
    for position, (item, state) in enumerate(zip(STORED_ITEMS, states, strict=True)):
        client.hset(f"crossfill:item:{SID}:{item['id']}", mapping={"data": json.dumps(item), **state})
        client.zadd(f"crossfill:order:{SID}:items", {item["id"]: position})

    # When the ledger reads it, then it shows as it did
    found = Ledger(client).order(SID)
    assert found is not None
    assert without_times(found.to_dict()) == PRINTED
    assert (found.created_at, found.items[2].problem, found.items[1].anomalies) == (1.5, "no price", ("quantity",))


def test_a_handler_is_told_the_order_summary_it_was_told_before() -> None:
    ledger = Ledger(fake_redis())
    order, items = classified()
    ledger.open_order(SID, order, items)

    claim = ledger.claim_item(SID, "li_1", lease_s=60)

    assert claim.order is not None and claim.item is not None
    assert json.dumps(claim.order.summary()) == json.dumps({"session_id": SID, **STORED_ORDER})
    assert without_times(claim.item.to_dict()) == {**STORED_ITEMS[0], "status": "in_progress", "attempts": 1,
                                                   "result": None, "error": None}


def test_a_platform_order_has_no_account_in_its_json() -> None:
    order = Order(session_id=SID, mode="payment")

    assert "account" not in order.to_dict() and "account" not in order.stored()
    assert "problem" not in OrderItem(id="li_1").to_dict()


def test_a_record_reads_as_the_dict_it_replaces() -> None:
    # Handlers registered through entry points were written against item and order dicts.
    item = OrderItem(id="li_1", product="prod_pro", cross_sell=True)
    order = Order(session_id=SID, items=(item,))

    assert (item["product"], item.get("cross_sell"), item.get("nope", "-")) == ("prod_pro", True, "-")
    assert "product" in item and "problem" not in item and "account" not in order
    assert order["items"][0] is item
    assert list(item) == list(item.to_dict())
    assert OrderItem.from_mapping({**item.to_dict(), "unknown": 1}) == item
