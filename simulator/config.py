"""The simulator's settings: built once at the edge (CLI or test), frozen, passed down."""
from __future__ import annotations

from dataclasses import dataclass, field

from fulfillment.catalog import Catalog
from simulator import defaults
from simulator.ratelimit import MODES, RateLimits


@dataclass(frozen=True)
class SimConfig:
    """Everything one simulator instance is configured with."""

    #: the Dashboard state it starts with: cross-sell relation and account default tax behavior
    catalog: Catalog = field(default_factory=Catalog)
    retry_base_ms: int = defaults.RETRY_BASE_MS
    retry_max_delay_ms: int = defaults.RETRY_MAX_DELAY_MS
    retry_max_attempts: int = defaults.RETRY_MAX_ATTEMPTS
    delivery_timeout_s: float = defaults.DELIVERY_TIMEOUT_S
    delivery_workers: int = defaults.DELIVERY_WORKERS
    api_version: str = defaults.API_VERSION
    max_line_items: int = defaults.MAX_LINE_ITEMS
    #: the platform account's mode: live objects and events, sk_live_/rk_live_ keys (test keys otherwise)
    livemode: bool = False
    #: Stripe's rate limits enforced on /v1 (``MODES["test"]``, ``MODES["live"]``); off by default
    rate_limits: RateLimits = MODES[defaults.RATE_LIMIT_MODE]

    def retry_delay_s(self, failed_attempts: int) -> float:
        """Delay before the next delivery attempt after *failed_attempts* failures (1, 2, ...), seconds."""
        delay_ms = min(self.retry_base_ms * 2.0 ** (failed_attempts - 1), float(self.retry_max_delay_ms))
        return delay_ms / 1000.0
