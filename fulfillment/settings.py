"""crossfill's settings: read once, at the edge, into one frozen object that is passed down."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from fulfillment import defaults
from fulfillment.errors import ConfigError

REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Settings:
    """Everything a crossfill process is configured with. Build it with :func:`load_settings`."""

    #: Redis for the inbox, the ledger and the Celery broker; None means the embedded Redis.
    redis_url: str | None = None
    data_dir: Path = Path(defaults.DATA_DIR)
    port: int = defaults.PORT
    web_workers: int = field(default_factory=lambda: defaults.web_workers(os.cpu_count() or 1))
    signature_tolerance: int = defaults.SIGNATURE_TOLERANCE_S
    max_body_bytes: int = defaults.MAX_BODY_BYTES
    catalog_path: Path | None = None
    #: Webhook signing secrets; more than one while a secret is being rolled.
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    stripe_api_key: str | None = field(default=None, repr=False)
    stripe_api_base: str = defaults.STRIPE_API_BASE
    stripe_api_version: str = defaults.STRIPE_API_VERSION
    stripe_connect_timeout: float = defaults.STRIPE_CONNECT_TIMEOUT_S
    stripe_read_timeout: float = defaults.STRIPE_READ_TIMEOUT_S
    visibility_timeout: int = defaults.VISIBILITY_TIMEOUT_S
    retry_base: float = defaults.RETRY_BASE_S
    retry_cap: float = defaults.RETRY_CAP_S
    max_attempts: int = defaults.MAX_ATTEMPTS
    item_lease: int = defaults.ITEM_LEASE_S
    #: Secret crossfill signs its calls to fulfillment systems with (Crossfill-Signature).
    handler_secret: str | None = field(default=None, repr=False)

    def with_redis(self, url: str) -> Settings:
        """Return a copy that uses the Redis at *url* (the embedded one, once started)."""
        return replace(self, redis_url=url)

    def with_secrets(self, secrets: tuple[str, ...]) -> Settings:
        """Return a copy that verifies webhooks with *secrets*."""
        return replace(self, webhook_secrets=secrets)

    @property
    def resolved_redis_url(self) -> str:
        """The Redis URL, which must be known by the time a component connects."""
        if self.redis_url is None:
            raise ConfigError(
                "CROSSFILL_REDIS_URL", None, "set it, or start through `crossfill` so the embedded Redis is used"
            )
        return self.redis_url


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read crossfill's settings from *environ* (default: the process environment).

    Raises:
        ConfigError: naming the first variable whose value is unusable, the value and the fix.
    """
    env = os.environ if environ is None else environ
    redis_url = _redis_url(env.get("CROSSFILL_REDIS_URL"))
    # Retry delays must stay below the visibility timeout, or Redis redelivers the waiting task.
    visibility = _int(env, "CROSSFILL_VISIBILITY_TIMEOUT", defaults.VISIBILITY_TIMEOUT_S, low=5, high=43_200)
    return Settings(
        redis_url=redis_url,
        data_dir=Path(env.get("CROSSFILL_DATA_DIR") or defaults.DATA_DIR),
        port=_int(env, "CROSSFILL_PORT", defaults.PORT, low=1, high=65535),
        web_workers=_int(
            env, "CROSSFILL_WEB_WORKERS", defaults.web_workers(os.cpu_count() or 1), low=1, high=256
        ),
        signature_tolerance=_int(
            env, "CROSSFILL_SIGNATURE_TOLERANCE", defaults.SIGNATURE_TOLERANCE_S, low=0, high=86_400
        ),
        max_body_bytes=_int(env, "CROSSFILL_MAX_BODY_BYTES", defaults.MAX_BODY_BYTES, low=1024, high=64 * 2**20),
        catalog_path=_catalog(env.get("CROSSFILL_CATALOG")),
        webhook_secrets=_secrets(env.get("STRIPE_WEBHOOK_SECRET")),
        stripe_api_key=env.get("STRIPE_API_KEY") or None,
        stripe_api_base=_api_base(env.get("STRIPE_API_BASE")),
        stripe_api_version=(env.get("STRIPE_API_VERSION") or defaults.STRIPE_API_VERSION).strip(),
        stripe_connect_timeout=_float(env, "CROSSFILL_STRIPE_CONNECT_TIMEOUT", defaults.STRIPE_CONNECT_TIMEOUT_S,
                                      low=0.1, high=60),
        stripe_read_timeout=_float(env, "CROSSFILL_STRIPE_READ_TIMEOUT", defaults.STRIPE_READ_TIMEOUT_S,
                                   low=0.1, high=300),
        visibility_timeout=visibility,
        retry_base=_float(env, "CROSSFILL_RETRY_BASE", defaults.RETRY_BASE_S, low=0.0, high=3600),
        retry_cap=_float(env, "CROSSFILL_RETRY_CAP", min(defaults.RETRY_CAP_S, visibility * 0.8),
                         low=0.0, high=visibility * 0.8),
        max_attempts=_int(env, "CROSSFILL_MAX_ATTEMPTS", defaults.MAX_ATTEMPTS, low=1, high=100),
        item_lease=_int(env, "CROSSFILL_ITEM_LEASE", defaults.ITEM_LEASE_S, low=1, high=86_400),
        handler_secret=env.get("CROSSFILL_HANDLER_SECRET") or None,
    )


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    return int(_number(env, name, default, low=low, high=high, parse=int, kind="a whole number"))


def _float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    return _number(env, name, default, low=low, high=high, parse=float, kind="a number of seconds")


def _number(env: Mapping[str, str], name: str, default: float, *, low: float, high: float,
            parse: Callable[[str], float], kind: str) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    fix = f"use {kind} between {_plain(low)} and {_plain(high)}"
    try:
        value = parse(raw.strip())
    except ValueError:
        raise ConfigError(name, raw, fix) from None
    if not low <= value <= high:
        raise ConfigError(name, raw, fix)
    return value


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _redis_url(raw: str | None) -> str | None:
    if raw is None or raw.strip() == "":
        return None
    fix = "use redis://host:port/db, rediss://... or unix:///path/to/redis.sock, or unset it for the embedded Redis"
    try:
        parts = urlsplit(raw.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ConfigError("CROSSFILL_REDIS_URL", raw, fix) from None
    if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
        raise ConfigError("CROSSFILL_REDIS_URL", raw, fix)
    return raw.strip()


def _secrets(raw: str | None) -> tuple[str, ...]:
    if raw is None or raw.strip() == "":
        return ()
    secrets = tuple(part.strip() for part in raw.split(","))
    for position, secret in enumerate(secrets, start=1):
        if not secret:
            # The value itself is secret: show its shape, never its text.
            shown = ",".join(redact(s) for s in secrets)
            raise ConfigError(
                "STRIPE_WEBHOOK_SECRET",
                shown,
                f"secret #{position} of {len(secrets)} is empty; list secrets separated by commas, with none empty",
            )
    return secrets


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


def redact(secret: str) -> str:
    """Show a secret's kind and length, never its text: ``whsec_…(38 chars)``."""
    if not secret:
        return "<empty>"
    prefix = secret.split("_", 1)[0] + "_" if "_" in secret[:8] else ""
    return f"{prefix}…({len(secret)} chars)"
