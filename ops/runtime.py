"""A process's stores and clients (inbox, ledger, dead letters, Stripe client…), opened lazily from its settings.

What a task needs besides its arguments, and what the CLI and the console read through: one place
that turns :class:`~fulfillment.settings.Settings` into connected objects, without a Celery app.
"""
from __future__ import annotations

from functools import cached_property

import redis

from fulfillment.catalog import Catalog, load_catalog
from fulfillment.deadletters import DeadLetters
from fulfillment.handlers import HandlerRegistry
from fulfillment.inbox import Inbox
from fulfillment.leases import LeaseKeeper
from fulfillment.ledger import Ledger
from fulfillment.ratelimit import RateLimiter, RateLimits, key_mode
from fulfillment.report import CrossSellReport
from fulfillment.settings import Settings
from fulfillment.stats import Stats
from fulfillment.store import connect
from fulfillment.stripe_api import StripeClient
from fulfillment.waiting_retries import WaitingRetries


class Runtime:
    """The stores and clients of one process, built from its settings on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def close(self) -> None:
        """Close the Redis connections this process opened (tests, and a console shutting down)."""
        if "redis" in self.__dict__:
            self.redis.close()

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(self.settings.resolved_redis_url, master_name=self.settings.redis.sentinel_master)

    @cached_property
    def inbox(self) -> Inbox:
        recovery = self.settings.recovery
        return Inbox(self.redis, ttl_s=recovery.retention, stuck_after_s=recovery.stuck_after,
                     replication=self.settings.redis.replication)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, ttl_s=self.settings.recovery.retention, replication=self.settings.redis.replication)

    @cached_property
    def leases(self) -> LeaseKeeper:
        return LeaseKeeper(self.ledger, lease_s=self.settings.retry.item_lease)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.redis)

    @cached_property
    def waiting_retries(self) -> WaitingRetries:
        return WaitingRetries(self.redis)

    @cached_property
    def handlers(self) -> HandlerRegistry:
        return HandlerRegistry()

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.catalog_path, self.handlers.check)

    @cached_property
    def report(self) -> CrossSellReport:
        return CrossSellReport(self.redis, self.catalog)

    @cached_property
    def stats(self) -> Stats:
        return Stats(self.redis)

    @cached_property
    def stripe(self) -> StripeClient:
        stripe = self.settings.stripe
        limiter = RateLimiter(self.redis, RateLimits.from_settings(stripe), mode=key_mode(stripe.api_key))
        return StripeClient(stripe, stats=self.stats, limiter=limiter)
