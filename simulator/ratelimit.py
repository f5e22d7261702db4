"""Stripe's rate limits, enforced: per account, and per account and endpoint, as token buckets.

Stripe counts requests per second for each account (100 in live mode, 25 in test mode) and, on top,
for each endpoint (25 by default), where an endpoint is a named operation: every
``GET /v1/checkout/sessions/{id}`` counts against one limit whatever the id. Each limit is a token
bucket (the algorithm Stripe describes for its own request limiter): it holds up to one second's
worth of requests and refills at the limit's rate, so a client paced at the rate is never refused
for network jitter, a burst after a quiet spell gets one second's worth, and the long-run rate is
the limit. A request needs a token from both buckets; refused (429), it takes none. Requests and
refusals are tallied per endpoint and per account for ``GET /sim/stats``, so benchmarks can read how
often clients hit the limits.
"""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator import defaults

_ROUNDING = 1e-9  #: float error a punctual client's refill may carry, tokens


@dataclass(frozen=True)
class RateLimits:
    """The limits enforced, requests per second; None means unlimited."""

    mode: str = "off"  #: the name shown in stats: off, test, live or custom
    account_per_s: int | None = None
    endpoint_per_s: int | None = None

    @property
    def enabled(self) -> bool:
        return self.account_per_s is not None or self.endpoint_per_s is not None


#: ``crossfill sim --rate-limits`` → what is enforced.
MODES = {
    "off": RateLimits(),
    "test": RateLimits("test", defaults.TEST_RATE_PER_S, defaults.ENDPOINT_RATE_PER_S),
    "live": RateLimits("live", defaults.LIVE_RATE_PER_S, defaults.ENDPOINT_RATE_PER_S),
}


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: the limit it would have broken."""

    scope: str  #: "account" or "endpoint"
    limit_per_s: int


class RateLimiter:
    """Token buckets per account and per (account, endpoint), behind one lock."""

    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  #: key → (tokens, when counted)
        #: endpoint, and account → [requests, 429s]
        self._counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        self._by_account: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])

    def admit(self, account: str, endpoint: str) -> Refusal | None:
        """Count one request to *endpoint* (``GET /v1/prices/{id}``) by *account*; None if it may run."""
        with self._lock:
            now = self._clock()
            checks = [(scope, key, limit) for scope, key, limit in (
                ("account", (account, ""), self.limits.account_per_s),
                ("endpoint", (account, endpoint), self.limits.endpoint_per_s)) if limit is not None]
            tokens = {}
            for scope, key, limit in checks:
                held, counted = self._buckets.get(key, (float(limit), now))
                tokens[key] = min(float(limit), held + (now - counted) * limit)
                if tokens[key] < 1.0 - _ROUNDING:
                    return Refusal(scope, limit)
            for _, key, _ in checks:
                self._buckets[key] = (tokens[key] - 1.0, now)
            return None

    def record(self, account: str, endpoint: str, status: int) -> None:
        """Tally one answered request (any status) by *account* to *endpoint*."""
        with self._lock:
            for counts in (self._counts[endpoint], self._by_account[account]):
                counts[0] += 1
                counts[1] += status == 429

    def stats(self) -> dict[str, Any]:
        """Requests and 429s per endpoint and per account since the start (or the last reset)."""
        with self._lock:
            endpoints = {name: {"requests": n, "rate_limited": limited}
                         for name, (n, limited) in sorted(self._counts.items())}
            accounts = {name: {"requests": n, "rate_limited": limited}
                        for name, (n, limited) in sorted(self._by_account.items())}
        return {"object": "sim.stats", "rate_limits": self.limits.mode,
                "account_per_s": self.limits.account_per_s, "endpoint_per_s": self.limits.endpoint_per_s,
                "requests": sum(e["requests"] for e in endpoints.values()),
                "rate_limited": sum(e["rate_limited"] for e in endpoints.values()), "endpoints": endpoints,
                "accounts": accounts}

    def reset(self) -> None:
        """Forget the tallies (the buckets stay, so limits keep holding)."""
        with self._lock:
            self._counts.clear()
            self._by_account.clear()
