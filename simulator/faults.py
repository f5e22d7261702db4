"""Fault injection: latency, 500s, timeouts and rate limiting on ``/v1``; lost webhook deliveries.

:func:`plan_faults` parses a fault plan; :class:`FaultInjector` decides, per request, what to do to
it (the decision is pure given its random source and clock); the Flask app applies the decision.
"""
from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from simulator import defaults
from simulator.errors import InjectedFailure, InvalidRequest, RateLimited
from simulator.params import Params


@dataclass(frozen=True)
class FaultPlan:
    """What to do to API requests whose path starts with *path_prefix*."""

    latency_ms: int = 0  #: added to every matching request, ms
    #: added per object an ``expand[]`` put in the answer (a line item list, an item, a price, a
    #: product), ms: a deep expansion costs Stripe work, so a list of expanded sessions answers slower
    expand_latency_ms: float = 0.0
    error_rate: float = 0.0  #: share of matching requests answered 500, 0..1
    timeout_rate: float = 0.0  #: share that hang *timeout_ms* and then answer 504, 0..1
    timeout_ms: int = defaults.FAULT_TIMEOUT_MS
    rate_limit_per_s: float | None = None  #: requests per second beyond which 429 is answered
    path_prefix: str = "/v1"
    method: str | None = None  #: only requests of this method (e.g. GET: reads); None: any
    webhook_drop_rate: float = 0.0  #: share of webhook deliveries lost on the way (never sent nor retried), 0..1
    seed: int | None = None  #: fixes the random draws, for reproducible runs

    def to_json(self) -> dict[str, Any]:
        """The plan as the ``/sim/faults`` endpoint shows it."""
        return {"object": "sim.faults", **asdict(self)}


def plan_faults(params: Params) -> FaultPlan:
    """Read a :class:`FaultPlan` from request params.

    Raises:
        InvalidRequest: naming the param that is out of range.
    """
    params.allow("latency_ms", "expand_latency_ms", "error_rate", "timeout_rate", "timeout_ms", "rate_limit_per_s",
                 "path_prefix", "method", "webhook_drop_rate", "seed")
    rate_limit = params.string("rate_limit_per_s")
    path_prefix = params.string("path_prefix") or "/v1"
    if not path_prefix.startswith("/v1"):
        raise InvalidRequest(f"path_prefix must start with /v1 (faults never touch /sim), got {path_prefix!r}",
                             param="path_prefix")
    return FaultPlan(
        latency_ms=params.integer("latency_ms", minimum=0, maximum=600_000, default=0) or 0,
        expand_latency_ms=_rate(params, "expand_latency_ms", high=10_000.0),
        error_rate=_rate(params, "error_rate"),
        timeout_rate=_rate(params, "timeout_rate"),
        timeout_ms=params.integer("timeout_ms", minimum=0, maximum=600_000,
                                  default=defaults.FAULT_TIMEOUT_MS) or 0,
        rate_limit_per_s=_positive(rate_limit, "rate_limit_per_s") if rate_limit is not None else None,
        path_prefix=path_prefix,
        method=(params.choice("method", ("GET", "POST", "DELETE")) or None),
        webhook_drop_rate=_rate(params, "webhook_drop_rate"),
        seed=params.integer("seed"),
    )


def _rate(params: Params, name: str, *, high: float = 1.0) -> float:
    """A number from 0 to *high* (a share, by default), 0 when absent."""
    text = params.string(name)
    if text is None:
        return 0.0
    value = _number(text, name)
    if not 0.0 <= value <= high:
        raise InvalidRequest(f"{name} must be between 0 and {high:g} (got {text})", param=name)
    return value


def _positive(text: str, name: str) -> float:
    value = _number(text, name)
    if value <= 0:
        raise InvalidRequest(f"{name} must be above 0 (got {text}); DELETE /sim/faults to clear it", param=name)
    return value


def _number(text: Any, name: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name} must be a number, got {text!r}", param=name) from None
    if not math.isfinite(value):
        raise InvalidRequest(f"{name} must be finite, got {text!r}", param=name)
    return value


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request: a delay, then either normal handling or an error."""

    delay_s: float = 0.0
    error: InvalidRequest | InjectedFailure | RateLimited | None = None


class FaultInjector:
    """Holds the current plan and the token bucket behind ``rate_limit_per_s``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._random = random.Random()
        self._tokens = 0.0
        self._refilled_at = clock()

    @property
    def plan(self) -> FaultPlan:
        """The plan in force."""
        return self._plan

    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the plan (and restart the rate limiter)."""
        with self._lock:
            self._plan = plan
            self._random = random.Random(plan.seed)
            self._tokens = max(plan.rate_limit_per_s or 0.0, 1.0)
            self._refilled_at = self._clock()

    def clear(self) -> None:
        """Back to no faults."""
        self.set_plan(FaultPlan())

    def decide(self, path: str, method: str = "GET") -> FaultDecision:
        """Decide the fate of a *method* request to *path*."""
        with self._lock:
            plan = self._plan
            if not path.startswith(plan.path_prefix) or (plan.method is not None and method != plan.method):
                return FaultDecision()
            delay = plan.latency_ms / 1000.0
            if plan.rate_limit_per_s is not None:
                wait_s = self._take_token(plan.rate_limit_per_s)
                if wait_s > 0:
                    return FaultDecision(delay, RateLimited(
                        f"Too many requests: the simulator is limiting {plan.path_prefix} to "
                        f"{plan.rate_limit_per_s:g} requests per second (POST/DELETE /sim/faults)",
                        retry_after_s=max(1, math.ceil(wait_s))))
            if plan.timeout_rate and self._random.random() < plan.timeout_rate:
                return FaultDecision(delay + plan.timeout_ms / 1000.0, InjectedFailure(
                    "Injected timeout: the simulator held this request and gave up", status=504))
            if plan.error_rate and self._random.random() < plan.error_rate:
                return FaultDecision(delay, InjectedFailure("Injected error: the simulator failed this request"))
            return FaultDecision(delay)

    def expansion_delay(self, path: str, expanded_objects: int) -> float:
        """Seconds an answer to *path* that expanded *expanded_objects* objects is held (``expand_latency_ms``)."""
        plan = self._plan
        if not expanded_objects or not plan.expand_latency_ms or not path.startswith(plan.path_prefix):
            return 0.0
        return plan.expand_latency_ms * expanded_objects / 1000.0

    def drops_delivery(self) -> bool:
        """Decide whether the next webhook delivery is lost (``webhook_drop_rate``)."""
        with self._lock:
            rate = self._plan.webhook_drop_rate
            return bool(rate) and self._random.random() < rate

    def _take_token(self, rate: float) -> float:
        """Take one token; returns 0, or the seconds until one is available."""
        now = self._clock()
        self._tokens = min(max(rate, 1.0), self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / rate
