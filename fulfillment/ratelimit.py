"""Stripe's rate limits, shared by every worker thread, process and host through Redis.

Stripe counts requests per account: 100/s in live mode and 25/s in test mode for the account as a
whole, AND 25/s for each endpoint (a method and a route: ``GET /v1/checkout/sessions/{id}`` is one
endpoint whatever the id). Every call crossfill makes to Stripe first reserves a slot under both
limits of its account in ONE Lua script call, then sleeps until its slot. Each limit is a GCRA
(generic cell rate algorithm): one Redis key per limit holding its "theoretical arrival time" (TAT),
the moment the limit is next free. A reservation moves the TAT on by one emission interval
(1/rate), so callers queue up in Redis, each told how long to wait, and go at the permitted pace
without polling.

A 429 from Stripe puts the account's endpoint into a shared cool-down (a key whose value is the
moment it ends, expiring then): every caller's next slot is pushed past it.

Keys (``{scope}`` is ``<mode>:<account>``, e.g. ``test:platform`` or ``live:acct_123``; the braces
make it a Redis Cluster hash tag, so one script call touches one slot)::

    crossfill:ratelimit:{scope}:global                 GCRA TAT of the account, microseconds
    crossfill:ratelimit:{scope}:ep:<endpoint>          GCRA TAT of one endpoint of it
    crossfill:ratelimit:{scope}:cool:<endpoint>        the endpoint's cool-down end, microseconds
"""
from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from fulfillment import defaults
from fulfillment.errors import TransientError
from fulfillment.livemode import key_livemode
from fulfillment.settings import StripeSettings
from fulfillment.store import KEY_PREFIX, reachable

log = logging.getLogger(__name__)

#: The account label of the platform's own account (the API key's), as opposed to ``acct_...``.
PLATFORM = "platform"

# Shared Lua: "now" in microseconds, as the caller gave it, or Redis's own clock when it gave "".
_LUA_NOW = """
local function now_us(given)
  local now = tonumber(given)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
"""

# Reserve a slot under two GCRA limits at once, unless the endpoint is cooling down.
# KEYS: global TAT, endpoint TAT, endpoint cool-down.
# ARGV: global interval, global tolerance, endpoint interval, endpoint tolerance, max wait (all
#       microseconds; an interval of 0 switches that limit off), now (microseconds; "" = Redis TIME,
#       one clock for every host).
# Returns {granted (1|0), wait in microseconds, what set the wait: "none"|"global"|"endpoint"|"cooldown"}.
# Nothing is written when the wait would exceed the maximum (the caller retries later instead), nor
# during a cool-down: a slot reserved behind it would move the account's global TAT past its end and
# hold the account's other endpoints up too; callers wait for its end and reserve then.
# A slot is the later of the two limits' next free moments, and both TATs move past it: every call
# of the account is at least one global interval from the next, every call of an endpoint one
# endpoint interval (exact, whatever the order callers come in; the price is that a call to a
# quiet endpoint queues behind the account's calls already reserved).
# Numbers are written with %.0f: Lua's default number-to-string keeps 14 digits, too few for µs.
_RESERVE = _LUA_NOW + """
local now = now_us(ARGV[6])
local ends = tonumber(redis.call('GET', KEYS[3]))
if ends and ends > now then return {0, ends - now, 'cooldown'} end
local at, why = now, 'none'
local limits = {{KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 'global'},
                {KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), 'endpoint'}}
local tats = {}
for i, limit in ipairs(limits) do
  if limit[2] > 0 then
    local tat = tonumber(redis.call('GET', limit[1])) or now
    tats[i] = tat
    if tat - limit[3] > at then at, why = tat - limit[3], limit[4] end
  end
end
local wait = at - now
if wait > tonumber(ARGV[5]) then return {0, wait, why} end
for i, limit in ipairs(limits) do
  if limit[2] > 0 then
    local tat = math.max(tats[i], at) + limit[2]
    redis.call('SET', limit[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  end
end
return {1, wait, why}
"""

# Start (or extend, never shorten) a cool-down. KEYS: the cool-down key. ARGV: seconds as
# microseconds, now (microseconds; "" = Redis TIME). Returns the end, microseconds.
_COOL_DOWN = _LUA_NOW + """
local now = now_us(ARGV[2])
local ends = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current >= ends then return string.format('%.0f', current) end
redis.call('SET', KEYS[1], string.format('%.0f', ends), 'PX', math.floor(tonumber(ARGV[1]) / 1000) + 1)
return string.format('%.0f', ends)
"""

#: Prefixes of Stripe object ids that may stand in a path (``prod_deploy`` has no digit but is an id).
_ID_PREFIXES = frozenset({
    "acct", "ba", "bpc", "btok", "card", "ch", "cn", "cs", "cus", "dp", "evt", "file", "fr", "ii", "in", "li",
    "mbur", "pi", "pm", "po", "price", "prod", "promo", "pyr", "py", "re", "seti", "si", "sub", "src", "tok",
    "tr", "txi", "txn", "we", "whsec",
})
_LOWER_WORD = re.compile(r"[a-z]+(_[a-z]+)*")


def is_object_id(segment: str) -> bool:
    """Whether a path segment is an object id (``cs_test_a1``, ``prod_deploy``) rather than a route word."""
    prefix, underscore, _ = segment.partition("_")
    if not prefix or not underscore:
        return False  # every Stripe id is a prefix, an underscore and more (``v1`` and ``sessions`` are not)
    # Route words are lowercase letters and underscores; an id carries digits or capitals, or a known prefix.
    return not _LOWER_WORD.fullmatch(segment) or prefix in _ID_PREFIXES


def endpoint_of(method: str, path: str) -> str:
    """The endpoint a request counts against: its method and its route, ids replaced by ``{id}``.

    >>> endpoint_of("get", "/v1/checkout/sessions/cs_test_a1B2/line_items")
    'GET /v1/checkout/sessions/{id}/line_items'
    """
    route = path.split("?", 1)[0]
    segments = ["{id}" if is_object_id(segment) else segment for segment in route.split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


def key_mode(api_key: str | None) -> str:
    """``live`` for a live key (``sk_live_``, ``rk_live_``), else ``test``: Stripe limits the two apart."""
    return "live" if key_livemode(api_key) else "test"


@dataclass(frozen=True)
class RateLimits:
    """Requests per second allowed to each account, as a whole and per endpoint; 0 switches one off."""

    global_per_s: float = defaults.STRIPE_TEST_RATE_LIMIT
    endpoint_per_s: float = defaults.STRIPE_ENDPOINT_RATE_LIMIT
    #: A caller told to wait longer than this gets a TransientError (its task retries) instead.
    max_wait_s: float = defaults.STRIPE_RATE_LIMIT_MAX_WAIT_S
    #: Requests allowed back to back after a quiet spell (GCRA burst); 1 paces every request.
    burst: int = 1
    #: Share of each limit left unused. Stripe counts requests as they arrive, in any second: calls
    #: sent exactly 1/rate apart reach it with network and scheduling jitter, and now and then 26 of
    #: them land within one second of 25/s. Pacing a little under the limit absorbs that jitter.
    headroom: float = defaults.STRIPE_RATE_LIMIT_HEADROOM

    @classmethod
    def for_key(cls, api_key: str | None, *, global_per_s: float | None = None,
                endpoint_per_s: float | None = None, max_wait_s: float | None = None) -> RateLimits:
        """Stripe's published limits for the key's mode, unless a number is given."""
        default_global = defaults.STRIPE_LIVE_RATE_LIMIT if key_mode(api_key) == "live" \
            else defaults.STRIPE_TEST_RATE_LIMIT
        return cls(global_per_s=default_global if global_per_s is None else global_per_s,
                   endpoint_per_s=defaults.STRIPE_ENDPOINT_RATE_LIMIT if endpoint_per_s is None else endpoint_per_s,
                   max_wait_s=defaults.STRIPE_RATE_LIMIT_MAX_WAIT_S if max_wait_s is None else max_wait_s)

    @classmethod
    def from_settings(cls, stripe: StripeSettings) -> RateLimits:
        """The limits of the Stripe settings section (``CROSSFILL_STRIPE_RATE_LIMIT``,
        ``CROSSFILL_STRIPE_ENDPOINT_RATE_LIMIT``), Stripe's published ones where unset."""
        return cls.for_key(stripe.api_key, global_per_s=stripe.rate_limit, endpoint_per_s=stripe.endpoint_rate_limit)

    @property
    def enabled(self) -> bool:
        return self.global_per_s > 0 or self.endpoint_per_s > 0


@dataclass(frozen=True)
class Slot:
    """The outcome of a reservation: granted or not, how long to wait, and which limit said so."""

    granted: bool
    wait_s: float
    limited_by: str  #: "none", "global", "endpoint" or "cooldown"


def _interval_us(per_s: float, headroom: float) -> int:
    """Microseconds between two calls at *per_s* less the *headroom* share; 0 when the limit is off."""
    return 0 if per_s <= 0 else max(1, round(1_000_000 / (per_s * (1.0 - headroom))))


class RateLimiter:
    """Paces calls to Stripe under the account's limits, shared through Redis by every process.

    Args:
        client: the Redis every worker shares.
        limits: the rates to keep.
        mode: ``live`` or ``test`` (see :func:`key_mode`); the two modes are limited apart.
        sleep: how a caller waits for its slot (tests pass a fake).
        clock: microseconds "now" for the scripts; None uses Redis's own clock (the same for every host).
    """

    def __init__(self, client: redis.Redis, limits: RateLimits, *, mode: str = "test",
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], int] | None = None) -> None:
        self.limits = limits
        self._mode = mode
        self._sleep = sleep
        self._clock = clock
        self._reserve = client.register_script(_RESERVE)
        self._cool_down = client.register_script(_COOL_DOWN)
        self._global_us = _interval_us(limits.global_per_s, limits.headroom)
        self._endpoint_us = _interval_us(limits.endpoint_per_s, limits.headroom)
        self._max_wait_us = round(limits.max_wait_s * 1_000_000)

    def reserve(self, account: str | None, endpoint: str, *, max_wait_s: float | None = None) -> Slot:
        """Reserve the next slot of *endpoint* under *account*'s limits (None: the platform's own).

        Not granted (and nothing reserved) when the endpoint is cooling down, or when the slot is
        more than *max_wait_s* (default: the limits' own) away.

        Raises:
            StoreUnavailable: when Redis cannot be reached.
        """
        scope = self._scope(account)
        keys = [f"{scope}:global", f"{scope}:ep:{endpoint}", f"{scope}:cool:{endpoint}"]
        burst = max(1, self.limits.burst) - 1
        args: list[Any] = [self._global_us, self._global_us * burst, self._endpoint_us, self._endpoint_us * burst,
                           self._max_wait_us if max_wait_s is None else round(max_wait_s * 1_000_000),
                           self._now()]
        with reachable():
            granted, wait_us, limited_by = self._reserve(keys=keys, args=args)
        return Slot(bool(int(granted)), max(0, int(wait_us)) / 1_000_000, str(limited_by))

    def acquire(self, account: str | None, endpoint: str) -> float:
        """Wait for a slot of *endpoint* under *account*'s limits; return the seconds waited.

        Raises:
            TransientError: with ``retry_after`` when the wait would exceed ``max_wait_s``; the task
                retries then, instead of holding a worker thread for that long.
            StoreUnavailable: when Redis cannot be reached.
        """
        if not self.limits.enabled:
            return 0.0
        waited = 0.0
        while True:
            slot = self.reserve(account, endpoint, max_wait_s=self.limits.max_wait_s - waited)
            if slot.granted or (slot.limited_by == "cooldown" and waited + slot.wait_s <= self.limits.max_wait_s):
                if slot.wait_s > 0:
                    self._sleep(slot.wait_s)
                waited += slot.wait_s
                if slot.granted:
                    return waited
                continue  # the cool-down is over: reserve a slot now
            raise TransientError(
                f"{endpoint} for {account or PLATFORM}: the next slot under Stripe's rate limit is "
                f"{slot.wait_s:.1f} s away ({slot.limited_by}), more than the {self.limits.max_wait_s:g} s "
                "a call may wait", retry_after=math.ceil(slot.wait_s))

    def cool_down(self, account: str | None, endpoint: str, seconds: float) -> None:
        """Hold every caller of *endpoint* under *account* off for *seconds* (a longer cool-down stays).

        Raises:
            StoreUnavailable: when Redis cannot be reached.
        """
        key = f"{self._scope(account)}:cool:{endpoint}"
        with reachable():
            self._cool_down(keys=[key], args=[round(max(0.0, seconds) * 1_000_000), self._now()])
        log.warning("Stripe rate limit hit: %s for %s cools down for %.1f s", endpoint, account or PLATFORM, seconds)

    def _scope(self, account: str | None) -> str:
        return f"{KEY_PREFIX}ratelimit:{{{self._mode}:{account or PLATFORM}}}"

    def _now(self) -> int | str:
        return "" if self._clock is None else self._clock()


def cool_down_seconds(status: int, headers: dict[str, str] | Any, body_code: str | None = None) -> float | None:
    """How long a Stripe answer asks the account's endpoint to cool down, or None when it does not.

    A 429 does, for its ``Retry-After`` (bounded) or a default second — unless Stripe says not to
    retry at all (``Stripe-Should-Retry: false``) or the 429 is an object's lock (``lock_timeout``),
    which concerns one object, not the rate.
    """
    if status != 429 or headers.get("Stripe-Should-Retry") == "false" or body_code == "lock_timeout":
        return None
    raw = headers.get("Retry-After")
    try:
        seconds = float(raw) if raw is not None else defaults.STRIPE_COOL_DOWN_S
    except ValueError:
        seconds = defaults.STRIPE_COOL_DOWN_S
    if not math.isfinite(seconds):
        seconds = defaults.STRIPE_COOL_DOWN_S
    return min(max(seconds, 0.0), defaults.STRIPE_COOL_DOWN_MAX_S)
