"""How late fulfillment is: the lag of items done, the oldest paid order not done, the oldest waiting message.

Lateness is a failure too (ARCHITECTURE.md): an order fulfilled an hour late after a crash was
"not lost", and nobody knew. Three figures, each read from Redis so that every worker process and
host counts in them:

- **fulfillment lag** — from the moment Stripe created the event that showed the order paid (its
  ``created``; for an order found by reconciliation or the order API, when crossfill learned it was
  paid) to the moment an item's effect was recorded. The ledger's own script counts it when an item
  becomes done (once per item, however often it ran) in a histogram of fixed buckets
  (:data:`~fulfillment.defaults.LAG_BUCKETS_S`): all time for ``/metrics``, and per 5-minute slot
  for "the last hour" (console, ``crossfill status``);
- **oldest unfulfilled** — the paid order with items still open that was paid first (the ledger's
  :data:`~fulfillment.ledger.UNFULFILLED` index), and how long ago;
- **oldest waiting message** — per queue, the age of the message BRPOP takes next, from the time
  crossfill queued it (``messaging.contract``'s ``crossfill_sent_at``; a message Celery built itself,
  such as beat's, carries none and is skipped).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from fulfillment import defaults
from fulfillment.ledger import LAG, LAG_SLOT_S, UNFULFILLED, lag_label, order_key
from fulfillment.store import reachable

SENT_AT = "crossfill_sent_at"  #: the message property (kombu envelope) holding when crossfill queued it
_LOOK_AT = 10  #: messages read from a queue's head to find one that says when it was queued
_OLDEST_CANDIDATES = 20  #: entries of the unfulfilled index read per look (settled ones are dropped)


@dataclass(frozen=True)
class Histogram:
    """Counts per bucket (not cumulative), in :data:`~fulfillment.defaults.LAG_BUCKETS_S` order then +Inf."""

    buckets: tuple[int, ...]
    total: float
    count: int

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, count of observations <= le), ...]`` ending with ``+Inf``, as Prometheus shows them."""
        running, rows = 0, []
        for label, count in zip((*map(lag_label, defaults.LAG_BUCKETS_S), "+Inf"), self.buckets, strict=True):
            running += count
            rows.append((label, running))
        return rows

    def quantile(self, q: float) -> float | None:
        """The *q* quantile, interpolated within its bucket as PromQL's ``histogram_quantile`` does;
        None with no observation. Past the last bound, the last bound."""
        if self.count == 0:
            return None
        rank, running, lower = q * self.count, 0, 0.0
        for bound, count in zip(defaults.LAG_BUCKETS_S, self.buckets, strict=False):
            if count and running + count >= rank:
                return lower + (bound - lower) * (rank - running) / count
            running, lower = running + count, bound
        return defaults.LAG_BUCKETS_S[-1]


@dataclass(frozen=True)
class Oldest:
    """The paid order with items still open that was paid first."""

    session_id: str
    paid_at: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.paid_at)


def _histogram(raw: dict[str, str]) -> Histogram:
    labels = (*map(lag_label, defaults.LAG_BUCKETS_S), "+Inf")
    return Histogram(tuple(int(raw.get(label) or 0) for label in labels), float(raw.get("sum") or 0.0),
                     int(raw.get("count") or 0))


def lag_histogram(client: redis.Redis) -> Histogram:
    """Every item done so far (``crossfill_fulfillment_lag_seconds``)."""
    with reachable():
        raw: dict[str, str] = client.hgetall(LAG)  # type: ignore[assignment]
    return _histogram(raw)


def recent_lag(client: redis.Redis, *, now: float | None = None, window_s: float = 3600.0) -> Histogram:
    """Items done in the last *window_s* seconds (whole 5-minute slots, the current one included)."""
    stamp = time.time() if now is None else now
    last = math.floor(stamp / LAG_SLOT_S)
    slots = range(last - max(0, math.ceil(window_s / LAG_SLOT_S) - 1), last + 1)
    with reachable(), client.pipeline(transaction=False) as pipe:
        for slot in slots:
            pipe.hgetall(f"{LAG}:{slot}")
        rows: list[dict[str, str]] = pipe.execute()
    parts = [_histogram(row) for row in rows]
    return Histogram(tuple(map(sum, zip(*(part.buckets for part in parts), strict=True))),
                     sum(part.total for part in parts), sum(part.count for part in parts))


def oldest_unfulfilled(client: redis.Redis) -> Oldest | None:
    """The paid order not yet fulfilled that was paid first, or None when every paid order is done.

    Entries whose order has settled (or expired) are dropped as they are met, so the index heals
    itself whatever wrote it.
    """
    with reachable():
        while True:
            rows: list[tuple[str, float]] = client.zrange(UNFULFILLED, 0, _OLDEST_CANDIDATES - 1,  # type: ignore[assignment]
                                                          withscores=True)
            if not rows:
                return None
            with client.pipeline(transaction=False) as pipe:
                for sid, _ in rows:
                    pipe.hget(order_key(sid), "status")
                statuses = pipe.execute()
            settled = [sid for (sid, _), status in zip(rows, statuses, strict=True) if status != "fulfilling"]
            for (sid, paid_at), status in zip(rows, statuses, strict=True):
                if status == "fulfilling":
                    if settled:
                        client.zrem(UNFULFILLED, *settled)
                    return Oldest(sid, float(paid_at))
            client.zrem(UNFULFILLED, *settled)


def sent_at(raw: str | bytes) -> float | None:
    """When crossfill queued a message (kombu's Redis envelope), or None when it does not say."""
    try:
        value = json.loads(raw)["properties"][SENT_AT]
    except (ValueError, TypeError, KeyError):
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def oldest_waiting(client: redis.Redis, queues: Sequence[str], *, now: float | None = None) -> dict[str, float]:
    """Per queue, the age in seconds of the message taken next (0 for an empty queue). BRPOP takes from
    the right end: the first of the last :data:`_LOOK_AT` that says when it was queued is read."""
    stamp = time.time() if now is None else now
    with reachable(), client.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.lrange(queue, -_LOOK_AT, -1)
        heads: list[list[Any]] = pipe.execute()
    ages = {}
    for queue, head in zip(queues, heads, strict=True):
        stamps = [found for raw in reversed(head) if (found := sent_at(raw)) is not None]
        ages[queue] = max(0.0, stamp - stamps[0]) if stamps else 0.0
    return ages


def summary(client: redis.Redis, *, now: float | None = None) -> dict[str, Any]:
    """What ops screens show: lag p50/p99 over the last hour, and the oldest paid order not fulfilled."""
    stamp = time.time() if now is None else now
    recent = recent_lag(client, now=stamp)
    oldest = oldest_unfulfilled(client)
    return {
        "lag_p50_s": _rounded(recent.quantile(0.5)), "lag_p99_s": _rounded(recent.quantile(0.99)),
        "items_done_last_hour": recent.count,
        "oldest_unfulfilled": None if oldest is None else {
            "session_id": oldest.session_id, "paid_at": oldest.paid_at, "age_s": round(oldest.age(stamp), 1),
            "late": oldest.age(stamp) > defaults.LATE_AFTER_S},
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
