"""Counters the workers keep in Redis, so that the receiver's /metrics shows them for every process.

One hash, ``crossfill:stats``; a field is ``<counter>`` or ``<counter>|<label>`` and its value a
count that only grows (``HINCRBY`` is atomic, so any number of worker threads and hosts can add).
The counters:

- ``stripe_api_calls|<endpoint>``: requests sent to the Stripe API, by endpoint
  (``GET /v1/checkout/sessions/{id}``, ``GET /v1/checkout/sessions/{id}/line_items``);
- ``stripe_rate_limited|<endpoint>``: 429s the Stripe API answered (the shared limiter keeps this near 0);
- ``stripe_rate_limit_waited_ms|<endpoint>``: time calls waited for their slot under the shared limiter, ms;
- ``stripe_rate_limit_deferred|<endpoint>``: calls not made because their slot was further away than a
  call may wait (their task retried later);
- ``stripe_orders_read``: Checkout Sessions read (one per event processed; the denominator of calls per order);
- ``unknown_values|<field>``: values of an open enum that the pinned API version does not name
  (``payment_status``, ``mode``, …), read and kept; an unknown ``payment_status`` is not fulfilled;
- ``livemode_mismatch|<where>``: events ignored because their ``livemode`` is not the key's mode;
- ``reconcile_runs``: reconciliation runs that completed; ``reconcile_recovered|<kind>``: events
  (``events``) recorded and sessions (``sessions``) fulfilled by them;
- ``sweeper_runs``: sweeps that completed; ``swept|<kind>``: events requeued (``events``), items
  re-dispatched (``items``), orders found paid on a re-read (``orders``).
"""
from __future__ import annotations

import redis

from fulfillment.store import KEY_PREFIX, reachable

STATS = f"{KEY_PREFIX}stats"  #: hash: counter[|label] → count

STRIPE_API_CALLS = "stripe_api_calls"
STRIPE_ORDERS_READ = "stripe_orders_read"
STRIPE_RATE_LIMITED = "stripe_rate_limited"
#: Milliseconds in Redis; /metrics shows seconds (crossfill_stripe_rate_limit_wait_seconds_total).
STRIPE_RATE_LIMIT_WAITED_MS = "stripe_rate_limit_waited_ms"
STRIPE_RATE_LIMIT_DEFERRED = "stripe_rate_limit_deferred"
UNKNOWN_VALUES = "unknown_values"
LIVEMODE_MISMATCH = "livemode_mismatch"
RECONCILE_RUNS = "reconcile_runs"
RECONCILE_RECOVERED = "reconcile_recovered"
SWEEPER_RUNS = "sweeper_runs"
SWEPT = "swept"


class Stats:
    """Monotonic counters in one Redis hash."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def incr(self, counter: str, label: str = "", amount: int = 1) -> None:
        """Add *amount* to *counter* (under *label*, when given)."""
        with reachable():
            self._redis.hincrby(STATS, f"{counter}|{label}" if label else counter, amount)

    def incr_many(self, counts: dict[tuple[str, str], int]) -> None:
        """Add several ``{(counter, label): amount}`` at once (one round trip); zero amounts are skipped."""
        with reachable(), self._redis.pipeline(transaction=False) as pipe:
            for (counter, label), amount in counts.items():
                if amount:
                    pipe.hincrby(STATS, f"{counter}|{label}" if label else counter, amount)
            pipe.execute()

    def read(self, counter: str) -> dict[str, int]:
        """``{label: count}`` of one counter; an unlabelled counter's count is under ``""``."""
        return self.read_all().get(counter, {})

    def read_all(self) -> dict[str, dict[str, int]]:
        """Every counter: ``{counter: {label: count}}``, in one round trip."""
        with reachable():
            raw: dict[str, str] = self._redis.hgetall(STATS)  # type: ignore[assignment]
        found: dict[str, dict[str, int]] = {}
        for name, count in raw.items():
            counter, _, label = name.partition("|")
            found.setdefault(counter, {})[label] = int(count)
        return found

    def total(self, counter: str) -> int:
        """The sum of a counter over its labels."""
        return sum(self.read(counter).values())
