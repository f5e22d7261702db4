"""The cross-sell rollups (fulfillment/report.py) on fakeredis: what is counted, once, and read back."""
from __future__ import annotations

import time
from datetime import timedelta

import fakeredis
import pytest

from fulfillment.catalog import parse_catalog
from fulfillment.ledger import TO_REPORT, Ledger
from fulfillment.records import Order, OrderItem
from fulfillment.report import CrossSellReport, as_csv_rows, day_of, figures
from tests.support.console import item, paid_order

CATALOG = parse_catalog({"products": {"prod_pro": {"cross_sell": "prod_deploy"}, "prod_deploy": {},
                                      "prod_plain": {}}})


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


@pytest.fixture
def ledger(client: fakeredis.FakeRedis) -> Ledger:
    return Ledger(client)


@pytest.fixture
def report(client: fakeredis.FakeRedis) -> CrossSellReport:
    return CrossSellReport(client, CATALOG)


def order(*items: OrderItem, total: int, currency: str = "usd", account: str | None = None) -> Order:
    return Order(session_id="cs_test_1", status="fulfilled", currency=currency, amount_total=total, items=items,
                 account=account)


def test_an_order_that_took_the_cross_sell() -> None:
    found = figures(order(item("li_1", "prod_pro"), item("li_2", "prod_deploy", cross_sell=True, amount=1500,
                                                        by="prod_pro", anomalies=("currency",)), total=6500), CATALOG)

    assert found == [("_", "prod_pro", "prod_deploy", {
        "paid_orders": 1, "orders_with_cross_sell": 1, "cross_sell_revenue:usd": 1500, "anomaly:currency": 1,
        "value_with:usd": 6500, "count_with:usd": 1})]


def test_an_order_without_it_and_products_without_a_cross_sell() -> None:
    found = figures(order(item("li_1", "prod_pro"), item("li_3", "prod_plain"), total=5700, account="acct_1"), CATALOG)

    assert found == [("acct_1", "prod_pro", "prod_deploy",
                      {"paid_orders": 1, "value_without:usd": 5700, "count_without:usd": 1})]
    assert figures(order(item("li_3", "prod_plain"), total=700), CATALOG) == []


def test_fulfilled_orders_are_counted_once_however_often_the_hook_runs(ledger: Ledger, report: CrossSellReport,
                                                                      client: fakeredis.FakeRedis) -> None:
    paid_order(ledger, "cs_test_1", cross_sell=True)
    paid_order(ledger, "cs_test_2")

    assert client.smembers(TO_REPORT) == {"cs_test_1", "cs_test_2"}
    counted = [report.count_if_due("cs_test_1"), report.count_if_due("cs_test_1"), report.count("cs_test_1"),
               report.drain(), report.drain()]

    assert counted == [True, False, False, 1, 0]
    assert client.smembers(TO_REPORT) == set()
    today = day_of(time.time())
    [row] = report.report(since=today).rows
    assert (row.paid_orders, row.orders_with_cross_sell, row.attach_rate) == (2, 1, 0.5)
    assert row.cross_sell_revenue == {"usd": 1500}
    assert row.average_with() == {"usd": 6500.0} and row.average_without() == {"usd": 5000.0}
    assert sorted(report.totals()) == [
        ("_", "prod_pro", "count_with:usd", 1), ("_", "prod_pro", "count_without:usd", 1),
        ("_", "prod_pro", "cross_sell_revenue:usd", 1500), ("_", "prod_pro", "orders_with_cross_sell", 1),
        ("_", "prod_pro", "paid_orders", 2), ("_", "prod_pro", "value_with:usd", 6500),
        ("_", "prod_pro", "value_without:usd", 5000)]


def test_orders_not_fulfilled_are_not_counted(ledger: Ledger, report: CrossSellReport) -> None:
    paid_order(ledger, "cs_test_open", fulfil=False)
    paid_order(ledger, "cs_test_failed", cross_sell=True, fail=True)

    assert [report.count("cs_test_open"), report.count("cs_test_failed"), report.count("cs_test_unknown")] == [
        False, False, False]
    assert report.report(since=day_of(time.time())).rows == []


def test_a_replayed_order_is_counted_when_it_becomes_fulfilled(ledger: Ledger, report: CrossSellReport) -> None:
    paid_order(ledger, "cs_test_late", fail=True)
    assert report.drain() == 0

    ledger.reopen_item("cs_test_late", "li_1", queue="fulfillment", message="m")
    claim = ledger.claim_item("cs_test_late", "li_1", lease_s=60)
    ledger.record_result("cs_test_late", "li_1", claim.token, {"ok": True})

    assert report.count_if_due("cs_test_late") is True
    assert report.report(since=day_of(time.time())).rows[0].paid_orders == 1


def test_days_range_and_account_filter(ledger: Ledger, report: CrossSellReport, client: fakeredis.FakeRedis) -> None:
    paid_order(ledger, "cs_test_old", cross_sell=True)
    client.hset("crossfill:order:cs_test_old", "created_at", time.time() - 40 * 86400)
    paid_order(ledger, "cs_test_new", cross_sell=True)
    report.drain()
    today = day_of(time.time())

    recent = report.report(since=today - timedelta(29))
    longer = report.report(since=today - timedelta(59))

    assert recent.rows[0].paid_orders == 1 and longer.rows[0].paid_orders == 2
    assert len(recent.days) == 30 and recent.days[-1]["paid_orders"] == 1
    assert recent.days[-1]["cross_sell_revenue"] == {"usd": 1500}
    assert report.report(since=today, account="acct_other").rows == []


def test_csv_has_a_row_per_currency() -> None:
    from fulfillment.report import Report, Row

    row = Row("_", "prod_pro", "prod_deploy", 3, 1, {"eur": 900, "usd": 1500}, {"usd": 6500}, {"usd": 1}, {"eur": 100},
              {"eur": 2})
    rows = list(as_csv_rows(Report(since=day_of(0), until=day_of(0), rows=[row], days=[])))

    assert rows[0][0] == "account" and [r[6] for r in rows[1:]] == ["eur", "usd"]
    assert rows[2][7:] == ["1500", "6500.00", ""]


def test_orders_from_before_the_index_are_indexed_once(ledger: Ledger, client: fakeredis.FakeRedis) -> None:
    from fulfillment.ledger import BY_CREATED

    paid_order(ledger, "cs_test_old1")
    paid_order(ledger, "cs_test_old2", fulfil=False)
    client.delete(BY_CREATED)  # as a ledger written before the index existed

    assert ledger.backfill_created_index(batch=1) == 2
    assert [sid for sid, _ in ledger.recent()] == ["cs_test_old2", "cs_test_old1"]
    client.zrem(BY_CREATED, "cs_test_old1")
    assert ledger.backfill_created_index() == 0  # once per Redis
