"""crossfill's domain settings: read once, at the edge, into frozen sections that are passed down.

Each component receives only its own section: the Stripe client gets :class:`StripeSettings`, the
tasks' retry policy :class:`RetrySettings`. The receiver's own section (port, body limit, webhook
secrets) lives with the receiver (``webhooks/settings.py``). Every section reads its variables with the
parsers of ``fulfillment/env.py``, which turn every unusable value into a :class:`ConfigError` naming
the variable, the value and the fix; secrets are shown only through ``fulfillment/credentials.py``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fulfillment import defaults
from fulfillment.credentials import redact_url
from fulfillment.env import env_duration, env_float, env_int, env_number, plain_number
from fulfillment.errors import ConfigError
from fulfillment.livemode import configured_livemode
from fulfillment.store import Replication, is_sentinel, parse_sentinel_url

REDIS_SCHEMES = ("redis", "rediss", "unix")
_MASTER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(frozen=True)
class RedisSettings:
    """Which master to ask the sentinels for, and how many replicas must hold a write crossfill answers for."""

    sentinel_master: str = defaults.REDIS_SENTINEL_MASTER
    #: replicas that must acknowledge an event before the receiver's 200, and a done mark before it counts
    min_replicas: int = 0
    wait_timeout_ms: int = defaults.REDIS_WAIT_TIMEOUT_MS

    @property
    def replication(self) -> Replication:
        return Replication(self.min_replicas, self.wait_timeout_ms)


@dataclass(frozen=True)
class StripeSettings:
    """How the worker talks to the Stripe API (or the simulator)."""

    api_key: str | None = field(default=None, repr=False)
    api_base: str = defaults.STRIPE_API_BASE
    api_version: str = defaults.STRIPE_API_VERSION
    connect_timeout: float = defaults.STRIPE_CONNECT_TIMEOUT_S
    read_timeout: float = defaults.STRIPE_READ_TIMEOUT_S
    #: The mode of events to act on: the key's (live or test), or CROSSFILL_LIVEMODE; None: any.
    livemode: bool | None = None
    #: Stripe's limit per account, requests/s (0: calls are not paced); None: Stripe's published one
    #: for the key's mode (100 live, 25 test).
    rate_limit: float | None = None
    #: Stripe's limit per endpoint of an account, requests/s (0: not paced).
    endpoint_rate_limit: float = defaults.STRIPE_ENDPOINT_RATE_LIMIT
    #: Sessions of waiting events read at once through the list endpoint (0: each read alone).
    batch_reads: int = defaults.BATCH_READS


@dataclass(frozen=True)
class RetrySettings:
    """When a failed task is tried again, and when it is given up (dead-lettered).

    Data only: ``fulfillment/backoff.py`` turns it into a delay, ``worker/retries.py`` into a decision.
    """

    base: float = defaults.RETRY_BASE_S
    cap: float = defaults.RETRY_CAP_S
    #: transient failures (outages, 429s, 5xx) are retried until this long after the first attempt
    horizon: float = defaults.RETRY_HORIZON_S
    #: unexpected errors (bugs) get this many attempts, not the horizon
    max_attempts: int = defaults.MAX_ATTEMPTS
    #: Redis redelivers an unacked task after this; every retry delay stays below it
    visibility_timeout: int = defaults.VISIBILITY_TIMEOUT_S
    #: a claim on an item lasts this long past its last renewal (renewed while its handler runs)
    item_lease: int = defaults.ITEM_LEASE_S

    @property
    def restore_interval(self) -> int:
        """Seconds between a worker connection's beats and its look at kombu's unacked set
        (``unacked_restore_interval``; worker/redelivery.py)."""
        return defaults.CONSUMER_BEAT_EVERY_S


@dataclass(frozen=True)
class RecoverySettings:
    """Reconciliation from the Stripe API, the sweeper of stuck work, and how long records are kept."""

    #: beat runs reconciliation this often, over the last ``reconcile_window`` seconds
    reconcile_every: float = defaults.RECONCILE_EVERY_S
    reconcile_window: float = defaults.RECONCILE_WINDOW_S
    #: beat runs the sweeper this often
    sweep_every: float = defaults.SWEEP_EVERY_S
    #: an event or item unchanged this long is re-dispatched when no message carries it (queued, or
    #: held unacked by a consumer: a dead consumer's come back by themselves, worker/redelivery.py)
    stuck_after: float = defaults.STUCK_AFTER_S
    #: an order awaiting payment has its session read again this long after its last change or check
    payment_recheck: float = defaults.PAYMENT_RECHECK_S
    #: orders and their items expire this long after the order's creation, inbox events after their last delivery
    retention: float = defaults.RETENTION_S


@dataclass(frozen=True)
class Settings:
    """What every crossfill process shares. Build it with :func:`load_settings`."""

    #: Redis for the inbox, the ledger and the Celery broker; None means the embedded Redis.
    redis_url: str | None = None
    data_dir: Path = Path(defaults.DATA_DIR)
    catalog_path: Path | None = None
    #: Secret crossfill signs its calls to fulfillment systems with (Crossfill-Signature).
    handler_secret: str | None = field(default=None, repr=False)
    stripe: StripeSettings = StripeSettings()
    retry: RetrySettings = RetrySettings()
    recovery: RecoverySettings = RecoverySettings()
    redis: RedisSettings = RedisSettings()

    def with_redis(self, url: str) -> Settings:
        """Return a copy that uses the Redis at *url* (the embedded one, once started)."""
        return replace(self, redis_url=url)

    def with_stripe(self, **changes: Any) -> Settings:
        """Return a copy whose Stripe section has *changes* (e.g. the local simulator's base and key)."""
        return replace(self, stripe=replace(self.stripe, **changes))

    @property
    def resolved_redis_url(self) -> str:
        """The Redis URL, which must be known by the time a component connects."""
        if self.redis_url is None:
            raise ConfigError(
                "CROSSFILL_REDIS_URL", None, "set it, or start through `crossfill` so the embedded Redis is used"
            )
        return self.redis_url


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read crossfill's shared and domain settings from *environ* (default: the process environment).

    Raises:
        ConfigError: naming the first variable whose value is unusable, the value and the fix.
    """
    env = os.environ if environ is None else environ
    redis_url = _redis_url(env.get("CROSSFILL_REDIS_URL"))
    retry = _retry(env)
    return Settings(
        redis_url=redis_url,
        data_dir=Path(env.get("CROSSFILL_DATA_DIR") or defaults.DATA_DIR),
        catalog_path=_catalog(env.get("CROSSFILL_CATALOG")),
        handler_secret=env.get("CROSSFILL_HANDLER_SECRET") or None,
        stripe=_stripe(env),
        retry=retry,
        recovery=_recovery(env),
        redis=_redis(env, redis_url),
    )


def _redis(env: Mapping[str, str], url: str | None) -> RedisSettings:
    master = (env.get("CROSSFILL_REDIS_SENTINEL_MASTER") or "").strip() or defaults.REDIS_SENTINEL_MASTER
    if not _MASTER_NAME.match(master):
        raise ConfigError("CROSSFILL_REDIS_SENTINEL_MASTER", env.get("CROSSFILL_REDIS_SENTINEL_MASTER"),
                          "use the name of the master the sentinels monitor (letters, digits, '.', '_', '-')")
    sentinel = url is not None and is_sentinel(url)
    # An acknowledged event or a done mark must survive a failover: under Sentinel one replica holds it
    # first. A single Redis has no replica to wait for.
    replicas = env_int(env, "CROSSFILL_REDIS_MIN_REPLICAS", defaults.REDIS_MIN_REPLICAS_SENTINEL if sentinel else 0,
                       low=0, high=16)
    wait_ms = env_int(env, "CROSSFILL_REDIS_WAIT_TIMEOUT_MS", defaults.REDIS_WAIT_TIMEOUT_MS, low=1,
                      high=int(defaults.REDIS_SOCKET_TIMEOUT_S * 1000) - 500)
    return RedisSettings(sentinel_master=master, min_replicas=replicas, wait_timeout_ms=wait_ms)


def _stripe(env: Mapping[str, str]) -> StripeSettings:
    endpoint_rate = _rate(env, "CROSSFILL_STRIPE_ENDPOINT_RATE_LIMIT")
    return StripeSettings(
        api_key=env.get("STRIPE_API_KEY") or None,
        api_base=_api_base(env.get("STRIPE_API_BASE")),
        api_version=(env.get("STRIPE_API_VERSION") or defaults.STRIPE_API_VERSION).strip(),
        connect_timeout=env_float(env, "CROSSFILL_STRIPE_CONNECT_TIMEOUT", defaults.STRIPE_CONNECT_TIMEOUT_S,
                                  low=0.1, high=60),
        read_timeout=env_float(env, "CROSSFILL_STRIPE_READ_TIMEOUT", defaults.STRIPE_READ_TIMEOUT_S,
                               low=0.1, high=300),
        livemode=configured_livemode(env.get("STRIPE_API_KEY"), env.get("CROSSFILL_LIVEMODE")),
        rate_limit=_rate(env, "CROSSFILL_STRIPE_RATE_LIMIT"),
        endpoint_rate_limit=defaults.STRIPE_ENDPOINT_RATE_LIMIT if endpoint_rate is None else endpoint_rate,
        batch_reads=env_int(env, "CROSSFILL_BATCH_READS", defaults.BATCH_READS, low=0, high=defaults.LIST_PAGE_SIZE),
    )


def _rate(env: Mapping[str, str], name: str) -> float | None:
    """Requests per second in *name* (0 switches the limit off), or None when unset or blank."""
    if not (env.get(name) or "").strip():
        return None
    return env_number(env, name, 0.0, low=0, high=10_000, parse=float,
                      kind="a number of requests per second (0 stops pacing)")


def _retry(env: Mapping[str, str]) -> RetrySettings:
    # Retry delays must stay below the visibility timeout, or Redis redelivers the waiting task.
    visibility = env_int(env, "CROSSFILL_VISIBILITY_TIMEOUT", defaults.VISIBILITY_TIMEOUT_S, low=5, high=43_200)
    return RetrySettings(
        base=env_float(env, "CROSSFILL_RETRY_BASE", defaults.RETRY_BASE_S, low=0.0, high=3600),
        cap=env_float(env, "CROSSFILL_RETRY_CAP", min(defaults.RETRY_CAP_S, visibility * 0.8),
                      low=0.0, high=visibility * 0.8),
        horizon=env_duration(env, "CROSSFILL_RETRY_HORIZON", defaults.RETRY_HORIZON_S, low=0, high=30 * 86_400),
        max_attempts=env_int(env, "CROSSFILL_MAX_ATTEMPTS", defaults.MAX_ATTEMPTS, low=1, high=100),
        visibility_timeout=visibility,
        item_lease=env_int(env, "CROSSFILL_ITEM_LEASE", defaults.ITEM_LEASE_S, low=3, high=86_400),
    )


def _recovery(env: Mapping[str, str]) -> RecoverySettings:
    retention = env_duration(env, "CROSSFILL_RETENTION", defaults.RETENTION_S, low=3600, high=3650 * 86_400)
    window = env_duration(env, "CROSSFILL_RECONCILE_WINDOW", defaults.RECONCILE_WINDOW_S, low=60,
                          high=defaults.RECONCILE_WINDOW_MAX_S)
    if window > retention:
        # What reconciliation finds missing must still be there to find: an event older than the
        # retention would be recorded again after its record expired (and its order re-read).
        raise ConfigError("CROSSFILL_RECONCILE_WINDOW", env.get("CROSSFILL_RECONCILE_WINDOW"),
                          f"keep it within CROSSFILL_RETENTION ({plain_number(retention)} s)")
    return RecoverySettings(
        reconcile_every=env_duration(env, "CROSSFILL_RECONCILE_EVERY", defaults.RECONCILE_EVERY_S, low=1,
                                     high=86_400),
        reconcile_window=window,
        sweep_every=env_duration(env, "CROSSFILL_SWEEP_EVERY", defaults.SWEEP_EVERY_S, low=1, high=3600),
        stuck_after=env_duration(env, "CROSSFILL_STUCK_AFTER", defaults.STUCK_AFTER_S, low=5, high=7 * 86_400),
        retention=retention,
    )


def _redis_url(raw: str | None) -> str | None:
    if raw is None or raw.strip() == "":
        return None
    fix = ("use redis://host:port/db, rediss://..., unix:///path/to/redis.sock or Sentinel's "
           "sentinel://host:port;sentinel://host2:port, or unset it for the embedded Redis")
    if is_sentinel(raw):
        try:
            parse_sentinel_url(raw)
        except ValueError:
            raise ConfigError("CROSSFILL_REDIS_URL", redact_url(raw), fix) from None
        return raw.strip()
    try:
        parts = urlsplit(raw.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ConfigError("CROSSFILL_REDIS_URL", redact_url(raw), fix) from None
    if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
        raise ConfigError("CROSSFILL_REDIS_URL", redact_url(raw), fix)
    return raw.strip()


def _catalog(raw: str | None) -> Path | None:
    if raw is None or raw.strip() == "":
        return None
    path = Path(raw.strip())
    if not path.is_file():
        raise ConfigError("CROSSFILL_CATALOG", raw, "point it at an existing catalog TOML file, or unset it")
    return path


def _api_base(raw: str | None) -> str:
    if raw is None or raw.strip() == "":
        return defaults.STRIPE_API_BASE
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("STRIPE_API_BASE", raw, "use an http:// or https:// URL such as https://api.stripe.com")
    return raw.strip().rstrip("/")
