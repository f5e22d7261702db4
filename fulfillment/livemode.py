"""Live or test: the mode crossfill runs in, and whether an event belongs to it.

Stripe sends test-mode events of connected accounts to a platform's live Connect endpoint too, and
tells integrators to check ``livemode``. crossfill's mode is its API key's (``sk_live_``/``rk_live_``
keys are live, ``sk_test_``/``rk_test_`` keys are test; a restricted ``rk_`` key works like a secret
one) or, for a receiver deployed without the key, ``CROSSFILL_LIVEMODE``. An event of the other mode
is acknowledged, recorded as ignored with :data:`MISMATCH`, counted, and never fulfilled — by the
receiver, and again by the worker (defense in depth: an event recorded before the gate existed, or
by a receiver configured without a mode).
"""
from __future__ import annotations

from fulfillment.errors import ConfigError

LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
MISMATCH = "livemode_mismatch"  #: the reason an ignored event of the other mode is recorded with

_TRUE, _FALSE = ("true", "1", "yes", "live"), ("false", "0", "no", "test")


def key_livemode(api_key: str | None) -> bool | None:
    """True for a live key, False for a test key, None when the key's prefix says neither."""
    if not api_key:
        return None
    if api_key.startswith(LIVE_KEY_PREFIXES):
        return True
    if api_key.startswith(TEST_KEY_PREFIXES):
        return False
    return None


def configured_livemode(api_key: str | None, explicit: str | None) -> bool | None:
    """The mode crossfill runs in: ``CROSSFILL_LIVEMODE`` (*explicit*) when set, else the key's.

    Returns None when neither says (then no event is ignored for its mode).

    Raises:
        ConfigError: *explicit* is not a boolean word, or it contradicts the key's prefix.
    """
    from_key = key_livemode(api_key)
    if explicit is None or not explicit.strip():
        return from_key
    word = explicit.strip().lower()
    if word not in _TRUE + _FALSE:
        raise ConfigError("CROSSFILL_LIVEMODE", explicit, "use true (live mode) or false (test mode)")
    mode = word in _TRUE
    if from_key is not None and from_key is not mode:
        kind = "live" if from_key else "test"
        raise ConfigError("CROSSFILL_LIVEMODE", explicit,
                          f"STRIPE_API_KEY is a {kind} key; set CROSSFILL_LIVEMODE={str(from_key).lower()} "
                          "or leave it unset")
    return mode


def is_mismatch(event_livemode: object, mode: bool | None) -> bool:
    """Whether an event's ``livemode`` is not the configured *mode* (never, when no mode is configured)."""
    return mode is not None and isinstance(event_livemode, bool) and event_livemode is not mode
