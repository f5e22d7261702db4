"""The cross-sell report: daily rollups written when an order is fulfilled, read over any range.

For every fulfilled order and every primary product in it that has a cross-sell configured, the
rollup of (day, account, primary product) counts the paid order, whether the buyer took the
cross-sell, the cross-sell's revenue and the order's value (per currency), and the cross-sell
anomalies. Rollups are small hashes, so the report survives order retention and a range of months
is a few hundred reads.

Counting is idempotent: one Lua script sets the order's ``reported`` flag and adds its figures
together, so a hook that runs twice (a retried task, two items finishing at once, the catch-up
drain) counts an order once. The ledger adds every order that becomes fulfilled to a ``to_report``
set (:data:`fulfillment.ledger.TO_REPORT`); :func:`drain` counts what is left there, so a worker that
died between fulfilling and counting loses nothing.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis

from fulfillment.catalog import Catalog
from fulfillment.ledger import TO_REPORT, Ledger, order_key
from fulfillment.records import Order
from fulfillment.store import KEY_PREFIX, reachable

_DAY = f"{KEY_PREFIX}report:day:"  #: hash per (day, account, product): the day's figures
INDEX = f"{KEY_PREFIX}report:index"  #: sorted set: "day|account|product" by the day's unix time
TOTALS = f"{KEY_PREFIX}report:totals"  #: hash: "account|product|figure" → all-time count (for /metrics)
OWN_ACCOUNT = "_"  #: the account part of a key for orders of the platform's own account
DRAIN_BATCH = 200
DEFAULT_DAYS = 30  #: the days a report covers when no first day is given (console, API, CLI)

# KEYS: order hash, to_report set. ARGV: sid, now, n, then n (key, field, increment) triples, m, then
# m (key, field, value) triples, k, then k (index member, score) pairs.
_COUNT = """
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'reported', ARGV[2]) == 0 then return 0 end
local i = 3
for _ = 1, tonumber(ARGV[i]) do
  redis.call('HINCRBY', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]); i = i + 3
end
i = i + 1
for _ = 1, tonumber(ARGV[i]) do
  redis.call('HSET', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]); i = i + 3
end
i = i + 1
for _ = 1, tonumber(ARGV[i]) do
  redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i + 1]); i = i + 2
end
return 1
"""


@dataclass
class Row:
    """The figures of one (account, primary product) over a range of days."""

    account: str
    product: str
    cross_sell: str | None = None
    paid_orders: int = 0
    orders_with_cross_sell: int = 0
    cross_sell_revenue: dict[str, int] = field(default_factory=dict)
    value_with: dict[str, int] = field(default_factory=dict)
    count_with: dict[str, int] = field(default_factory=dict)
    value_without: dict[str, int] = field(default_factory=dict)
    count_without: dict[str, int] = field(default_factory=dict)
    anomalies: dict[str, int] = field(default_factory=dict)

    @property
    def attach_rate(self) -> float:
        return self.orders_with_cross_sell / self.paid_orders if self.paid_orders else 0.0

    def average_with(self) -> dict[str, float]:
        return {cur: self.value_with[cur] / n for cur, n in self.count_with.items() if n}

    def average_without(self) -> dict[str, float]:
        return {cur: self.value_without[cur] / n for cur, n in self.count_without.items() if n}

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "product": self.product, "cross_sell": self.cross_sell,
                "paid_orders": self.paid_orders, "orders_with_cross_sell": self.orders_with_cross_sell,
                "attach_rate": round(self.attach_rate, 4), "cross_sell_revenue": dict(self.cross_sell_revenue),
                "average_order_value_with": {k: round(v, 2) for k, v in self.average_with().items()},
                "average_order_value_without": {k: round(v, 2) for k, v in self.average_without().items()}}


@dataclass
class Report:
    """The report over [since, until] (UTC days, both included)."""

    since: date
    until: date
    rows: list[Row]
    #: Per day (ISO date) in the range: paid orders, orders with the cross-sell, revenue per currency.
    days: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """The report as the API and ``crossfill report --json`` show it."""
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "rows": [row.as_dict() for row in self.rows], "anomalies": self.anomalies}

    @property
    def anomalies(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for row in self.rows:
            for kind, count in row.anomalies.items():
                total[kind] = total.get(kind, 0) + count
        return dict(sorted(total.items()))


def day_of(stamp: float) -> date:
    return datetime.fromtimestamp(stamp, UTC).date()


def _day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def figures(order: Order, catalog: Catalog) -> list[tuple[str, str, str | None, dict[str, int]]]:
    """What one fulfilled order adds: (account, primary product, its cross-sell, {figure: increment}).

    Pure. Only primaries whose catalog entry names a cross-sell are counted (the report is about
    offers made); an order with two such primaries counts for each.
    """
    items = order.items
    account = order.account or OWN_ACCOUNT
    currency = (order.currency or "").lower() or "unknown"
    value = order.amount_total or 0
    found: list[tuple[str, str, str | None, dict[str, int]]] = []
    primaries = sorted({item.product for item in items if not item.cross_sell and item.product})
    products = catalog.for_account(order.account or None)
    for product in primaries:
        offered = products.product(product).cross_sell
        if not offered:
            continue
        taken = [item for item in items if item.cross_sell and
                 (item.cross_sold_by == product or item.product == offered)]
        counts: dict[str, int] = {"paid_orders": 1}
        if taken:
            counts["orders_with_cross_sell"] = 1
            for item in taken:
                item_currency = (item.currency or currency).lower()
                key = f"cross_sell_revenue:{item_currency}"
                counts[key] = counts.get(key, 0) + (item.amount_total or 0)
                for anomaly in item.anomalies:
                    counts[f"anomaly:{anomaly}"] = counts.get(f"anomaly:{anomaly}", 0) + 1
            counts[f"value_with:{currency}"], counts[f"count_with:{currency}"] = value, 1
        else:
            counts[f"value_without:{currency}"], counts[f"count_without:{currency}"] = value, 1
        found.append((account, product, offered, counts))
    return found


class CrossSellReport:
    """Writes and reads the rollups."""

    def __init__(self, client: redis.Redis, catalog: Catalog) -> None:
        self._redis = client
        self._catalog = catalog
        self._ledger = Ledger(client)
        self._count = client.register_script(_COUNT)

    def count(self, session_id: str) -> bool:
        """Add a fulfilled order to its day's rollups, once; False when it was counted already, is
        not fulfilled, or is unknown."""
        return self._count_order(session_id, self._ledger.order(session_id))

    def _count_order(self, session_id: str, order: Order | None) -> bool:
        if order is None or order.status != "fulfilled":
            with reachable():
                self._redis.srem(TO_REPORT, session_id)
            return False
        day = day_of(order.created_at or time.time())
        increments: list[Any] = []
        labels: list[Any] = []
        index: list[Any] = []
        for account, product, offered, counts in figures(order, self._catalog):
            member = f"{day.isoformat()}|{account}|{product}"
            key = _DAY + member
            for name, amount in counts.items():
                increments += [key, name, amount, TOTALS, f"{account}|{product}|{name}", amount]
            labels += [key, "cross_sell", offered]
            index += [member, _day_start(day)]
        args: list[Any] = [session_id, time.time(), len(increments) // 3, *increments, len(labels) // 3, *labels,
                           len(index) // 2, *index]
        with reachable():
            return bool(self._count(keys=[order_key(session_id), TO_REPORT, INDEX], args=args))

    def count_if_due(self, session_id: str) -> bool:
        """Count the order when it is fulfilled and not counted yet (one SISMEMBER otherwise)."""
        with reachable():
            due = bool(self._redis.sismember(TO_REPORT, session_id))
        return self.count(session_id) if due else False

    def drain(self, limit: int = 10_000) -> int:
        """Count the fulfilled orders not counted yet (a hook that never ran); how many were counted."""
        counted = 0
        while counted < limit:
            with reachable():
                pending: list[str] = self._redis.srandmember(TO_REPORT, DRAIN_BATCH)  # type: ignore[assignment]
            if not pending:
                break
            for session_id, order in zip(pending, self._ledger.orders(pending), strict=True):
                counted += int(self._count_order(session_id, order))
        return counted

    def report(self, *, since: date, until: date | None = None, account: str | None = None) -> Report:
        """The figures per (account, primary product) and per day over [since, until]."""
        until = until or day_of(time.time())
        with reachable():
            members: list[str] = self._redis.zrangebyscore(  # type: ignore[assignment]
                INDEX, _day_start(since), _day_start(until))
            with self._redis.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.hgetall(_DAY + member)
                hashes = pipe.execute()
        rows: dict[tuple[str, str], Row] = {}
        dates = [(since + timedelta(n)).isoformat() for n in range((until - since).days + 1)]
        days: dict[str, dict[str, Any]] = {
            day: {"day": day, "paid_orders": 0, "orders_with_cross_sell": 0, "cross_sell_revenue": {}}
            for day in dates}
        for member, figures_ in zip(members, hashes, strict=True):
            day, member_account, product = member.split("|", 2)
            if account is not None and member_account != account:
                continue
            row = rows.setdefault((member_account, product), Row(member_account, product))
            row.cross_sell = figures_.get("cross_sell") or row.cross_sell
            today = days.get(day)
            for name, raw in figures_.items():
                if name == "cross_sell":
                    continue
                amount = int(raw)
                kind, _, detail = name.partition(":")
                if not detail:
                    setattr(row, kind, getattr(row, kind, 0) + amount)
                    if today is not None and kind in today:
                        today[kind] += amount
                    continue
                target = row.anomalies if kind == "anomaly" else getattr(row, kind)
                target[detail] = target.get(detail, 0) + amount
                if today is not None and kind == "cross_sell_revenue":
                    today[kind][detail] = today[kind].get(detail, 0) + amount
        ordered = sorted(rows.values(), key=lambda row: (row.account, row.product))
        return Report(since=since, until=until, rows=ordered, days=list(days.values()))

    def totals(self) -> Iterator[tuple[str, str, str, int]]:
        """All-time (account, product, figure, count), for /metrics."""
        return read_totals(self._redis)


def read_totals(client: redis.Redis) -> Iterator[tuple[str, str, str, int]]:
    """All-time (account, product, figure, count) of every rollup (one HGETALL)."""
    with reachable():
        raw: dict[str, str] = client.hgetall(TOTALS)  # type: ignore[assignment]
    for name, count in sorted(raw.items()):
        account, product, figure = name.split("|", 2)
        yield account, product, figure, int(count)


#: Currencies without a minor unit (Stripe's zero-decimal currencies): amounts are whole units.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())


def major(amount: float | None, currency: str | None) -> float:
    """An amount in Stripe's minor units in the currency's major unit (cents → dollars; yen stay yen)."""
    if amount is None:
        return 0.0
    return float(amount) if (currency or "").lower() in ZERO_DECIMAL else float(amount) / 100


def account_label(account: str) -> str:
    return "own account" if account == OWN_ACCOUNT else account


def text_lines(report: Report) -> list[str]:
    """The report as lines of text (``crossfill report``, ``crossfill demo``)."""
    lines = [f"cross-sells {report.since} .. {report.until} (UTC)"]
    if not report.rows:
        lines.append("  no fulfilled orders of products with a cross-sell in this range")
    for row in report.rows:
        averages = "  ".join(f"avg order {cur.upper()} with {major(row.average_with().get(cur, 0), cur):.2f} / "
                             f"without {major(row.average_without().get(cur, 0), cur):.2f}"
                             for cur in sorted({*row.average_with(), *row.average_without()}))
        revenue = ", ".join(f"{major(amount, cur):.2f} {cur.upper()}"
                            for cur, amount in sorted(row.cross_sell_revenue.items()))
        lines.append(f"  {account_label(row.account):<12} {row.product:<22} -> {row.cross_sell or '-':<22} "
                     f"paid {row.paid_orders:>4}  took {row.orders_with_cross_sell:>4}  "
                     f"attach {row.attach_rate * 100:5.1f}%  revenue {revenue or '0'}  {averages}")
    if report.anomalies:
        lines.append("  anomalies: " + "  ".join(f"{kind}={count}" for kind, count in report.anomalies.items()))
    return lines


def as_csv_rows(report: Report) -> Iterable[list[str]]:
    """The report as CSV rows, one per (account, product, currency), header first."""
    yield ["account", "product", "cross_sell", "paid_orders", "orders_with_cross_sell", "attach_rate", "currency",
           "cross_sell_revenue", "average_order_value_with", "average_order_value_without"]
    for row in report.rows:
        with_avg, without_avg = row.average_with(), row.average_without()
        currencies = sorted({*row.cross_sell_revenue, *with_avg, *without_avg}) or [""]
        for currency in currencies:
            yield [row.account, row.product, row.cross_sell or "", str(row.paid_orders),
                   str(row.orders_with_cross_sell), f"{row.attach_rate:.4f}", currency,
                   str(row.cross_sell_revenue.get(currency, 0)),
                   f"{with_avg[currency]:.2f}" if currency in with_avg else "",
                   f"{without_avg[currency]:.2f}" if currency in without_avg else ""]
