"""The receiver's settings section: where it listens, what it accepts, which secrets sign webhooks."""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fulfillment.credentials import redact
from fulfillment.env import env_int
from fulfillment.errors import ConfigError
from fulfillment.livemode import configured_livemode
from webhooks import defaults

SECRET_PREFIX = "whsec_"  #: Stripe's signing secrets start with it; what follows is the secret


@dataclass(frozen=True)
class ReceiverSettings:
    """What the public receiver is configured with. Build it with :func:`load_receiver_settings`."""

    port: int = defaults.PORT
    #: Where GET /metrics is served, inside: the public port never serves it.
    metrics_bind: str = defaults.METRICS_BIND
    metrics_port: int = defaults.METRICS_PORT
    web_workers: int = field(default_factory=lambda: defaults.web_workers(os.cpu_count() or 1))
    signature_tolerance: int = defaults.SIGNATURE_TOLERANCE_S
    max_body_bytes: int = defaults.MAX_BODY_BYTES
    #: Webhook signing secrets; more than one while a secret is being rolled.
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    #: The mode of events to act on (STRIPE_API_KEY's, or CROSSFILL_LIVEMODE); None: any. Others are ignored.
    livemode: bool | None = None

    def with_secrets(self, secrets: tuple[str, ...]) -> ReceiverSettings:
        """Return a copy that verifies webhooks with *secrets*."""
        return replace(self, webhook_secrets=secrets)


def load_receiver_settings(environ: Mapping[str, str] | None = None) -> ReceiverSettings:
    """Read the receiver's settings from *environ* (default: the process environment).

    Raises:
        ConfigError: naming the first variable whose value is unusable, the value and the fix.
    """
    env = os.environ if environ is None else environ
    return ReceiverSettings(
        port=env_int(env, "CROSSFILL_PORT", defaults.PORT, low=1, high=65535),
        metrics_bind=_bind_address(env.get("CROSSFILL_METRICS_BIND")),
        metrics_port=env_int(env, "CROSSFILL_METRICS_PORT", defaults.METRICS_PORT, low=1, high=65535),
        web_workers=env_int(env, "CROSSFILL_WEB_WORKERS", defaults.web_workers(os.cpu_count() or 1),
                            low=1, high=256),
        signature_tolerance=env_int(env, "CROSSFILL_SIGNATURE_TOLERANCE", defaults.SIGNATURE_TOLERANCE_S,
                                    low=0, high=86_400),
        max_body_bytes=env_int(env, "CROSSFILL_MAX_BODY_BYTES", defaults.MAX_BODY_BYTES, low=1024, high=64 * 2**20),
        webhook_secrets=_secrets(env.get("STRIPE_WEBHOOK_SECRET")),
        livemode=configured_livemode(env.get("STRIPE_API_KEY"), env.get("CROSSFILL_LIVEMODE")),
    )


def _bind_address(raw: str | None) -> str:
    """CROSSFILL_METRICS_BIND: an IP address (``127.0.0.1``, ``0.0.0.0`` in a container, ``::1``) or ``localhost``."""
    if raw is None or raw.strip() == "":
        return defaults.METRICS_BIND
    value = raw.strip()
    if value == "localhost":
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError("CROSSFILL_METRICS_BIND", raw, "use an IP address of this host, e.g. 127.0.0.1 (the "
                          "default), or 0.0.0.0 inside a container whose port is not published") from None


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
        if secret == SECRET_PREFIX:
            raise ConfigError("STRIPE_WEBHOOK_SECRET", ",".join(redact(s) for s in secrets),
                              f"secret #{position} of {len(secrets)} has nothing after {SECRET_PREFIX}; copy the "
                              "endpoint's whole signing secret from the Dashboard")
    return secrets
