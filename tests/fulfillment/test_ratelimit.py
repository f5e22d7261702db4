"""The shared Stripe rate limiter: pure parts, and its Lua scripts on fakeredis (the same contract runs on
a real redis-server in tests/integration/test_ratelimit_redis.py)."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import fakeredis
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from fulfillment.errors import StoreUnavailable
from fulfillment.ratelimit import (
    RateLimiter,
    RateLimits,
    cool_down_seconds,
    endpoint_of,
    is_object_id,
    key_mode,
)
from fulfillment.store import connect
from tests.support.ratelimit_contract import SESSION, LimiterContract


class TestOnFakeredis(LimiterContract):
    @pytest.fixture
    def client(self) -> Iterator[redis.Redis]:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        yield client
        client.close()


@pytest.mark.parametrize(("method", "path", "endpoint"), [
    ("GET", "/v1/checkout/sessions/cs_test_a1B2c3", "GET /v1/checkout/sessions/{id}"),
    ("get", "/v1/checkout/sessions/cs_live_Z9/line_items", "GET /v1/checkout/sessions/{id}/line_items"),
    ("GET", "/v1/checkout/sessions", "GET /v1/checkout/sessions"),
    ("POST", "/v1/checkout/sessions/cs_test_1/expire", "POST /v1/checkout/sessions/{id}/expire"),
    ("GET", "/v1/products/prod_deploy", "GET /v1/products/{id}"),
    ("GET", "/v1/events/evt_1NG8Du2eZvKYlo2C", "GET /v1/events/{id}"),
    ("GET", "/v1/webhook_endpoints/we_123?expand[]=x", "GET /v1/webhook_endpoints/{id}"),
    ("GET", "/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa", "GET /v1/payment_intents/{id}"),
])
def test_the_endpoint_is_the_method_and_the_route(method: str, path: str, endpoint: str) -> None:
    assert endpoint_of(method, path) == endpoint


@pytest.mark.parametrize("segment", ["line_items", "webhook_endpoints", "sessions", "checkout", "expire", "v1", ""])
def test_route_words_are_not_ids(segment: str) -> None:
    assert not is_object_id(segment)


@pytest.mark.parametrize(("key", "mode"), [
    ("sk_live_abc", "live"), ("rk_live_abc", "live"), ("sk_test_abc", "test"), ("rk_test_abc", "test"),
    (None, "test"), ("", "test"),
])
def test_the_key_tells_the_mode(key: str | None, mode: str) -> None:
    assert key_mode(key) == mode


def test_the_defaults_are_stripes_published_limits() -> None:
    assert RateLimits.for_key("sk_live_x") == RateLimits(global_per_s=100, endpoint_per_s=25, max_wait_s=10)
    assert RateLimits.for_key("rk_test_x") == RateLimits(global_per_s=25, endpoint_per_s=25, max_wait_s=10)
    chosen = RateLimits.for_key("sk_live_x", global_per_s=0, endpoint_per_s=5, max_wait_s=2)
    assert (chosen.global_per_s, chosen.endpoint_per_s, chosen.max_wait_s) == (0, 5, 2)
    assert not RateLimits(global_per_s=0, endpoint_per_s=0).enabled


@pytest.mark.parametrize(("status", "headers", "code", "seconds"), [
    (429, {}, None, 1.0),
    (429, {"Retry-After": "3"}, "rate_limit", 3.0),
    (429, {"Retry-After": "0.5"}, None, 0.5),
    (429, {"Retry-After": "9999"}, None, 60.0),
    (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None, 1.0),
    (429, {"Retry-After": "nan"}, None, 1.0),
    (429, {"Stripe-Should-Retry": "false", "Retry-After": "3"}, None, None),
    (429, {}, "lock_timeout", None),
    (500, {"Retry-After": "3"}, None, None),
    (200, {}, None, None),
])
def test_a_429_asks_for_a_cool_down(status: int, headers: dict[str, str], code: str | None,
                                     seconds: float | None) -> None:
    assert cool_down_seconds(status, headers, code) == seconds


def test_limits_switched_off_never_touch_redis() -> None:
    # A Redis that cannot be reached: acquire must not need it when both limits are off.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}/0")
    limiter = RateLimiter(client, RateLimits(global_per_s=0, endpoint_per_s=0))
    assert limiter.acquire(None, SESSION) == 0.0
    on = RateLimiter(client, RateLimits(global_per_s=25, endpoint_per_s=25))
    with pytest.raises(StoreUnavailable):
        on.acquire(None, SESSION)


def test_acquire_sleeps_the_time_it_was_given() -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    slept: list[float] = []
    now = [1_800_000_000_000_000]
    limiter = RateLimiter(client, RateLimits(global_per_s=0, endpoint_per_s=20, headroom=0), sleep=slept.append,
                          clock=lambda: now[0])
    waited = [limiter.acquire("acct_1Conn", SESSION) for _ in range(3)]
    assert waited == [0.0, 0.05, 0.1]
    assert slept == [0.05, 0.1]  # no sleep for a slot that is free now


def test_the_settings_section_chooses_the_limits() -> None:
    from fulfillment.settings import load_settings

    stripe = load_settings({"STRIPE_API_KEY": "rk_live_x", "CROSSFILL_STRIPE_ENDPOINT_RATE_LIMIT": "10"}).stripe
    assert (RateLimits.from_settings(stripe).global_per_s, RateLimits.from_settings(stripe).endpoint_per_s) == (100, 10)
    off = load_settings({"STRIPE_API_KEY": "sk_test_x", "CROSSFILL_STRIPE_RATE_LIMIT": "0",
                         "CROSSFILL_STRIPE_ENDPOINT_RATE_LIMIT": "0"}).stripe
    assert not RateLimits.from_settings(off).enabled
    assert RateLimits.from_settings(load_settings({"STRIPE_API_KEY": "sk_test_x"}).stripe).global_per_s == 25


@pytest.mark.parametrize(("name", "value"), [("CROSSFILL_STRIPE_RATE_LIMIT", "fast"),
                                             ("CROSSFILL_STRIPE_ENDPOINT_RATE_LIMIT", "-1"),
                                             ("CROSSFILL_STRIPE_RATE_LIMIT", "1e9")])
def test_a_wrong_rate_limit_setting_is_named(name: str, value: str) -> None:
    from fulfillment.errors import ConfigError
    from fulfillment.settings import load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    assert caught.value.name == name


@given(steps=st.lists(st.tuples(st.integers(0, 120), st.sampled_from(["a", "b", "c"]),
                                st.sampled_from([None, "acct_1X"])), min_size=1, max_size=60),
       global_per_s=st.sampled_from([0, 20, 50]), endpoint_per_s=st.sampled_from([10, 25]))
def test_granted_slots_keep_both_limits_whatever_the_arrivals(steps: list[tuple[int, str, str | None]],
                                                               global_per_s: int, endpoint_per_s: int) -> None:
    # Given callers arriving at any moments, to any endpoints of two accounts,
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    now = [1_800_000_000_000_000]
    limiter = RateLimiter(client, RateLimits(global_per_s=global_per_s, endpoint_per_s=endpoint_per_s,
                                             max_wait_s=2, headroom=0), clock=lambda: now[0], sleep=lambda s: None)
    slots: list[tuple[int, str, str | None]] = []
    for advance_ms, endpoint, account in steps:
        now[0] += advance_ms * 1000
        slot = limiter.reserve(account, endpoint)
        assert slot.wait_s <= 2
        if slot.granted:
            slots.append((now[0] + round(slot.wait_s * 1_000_000), endpoint, account))
    # then the slots granted to one account are one global interval apart, and those of one endpoint
    # one endpoint interval apart (the other account's slots are not its business).
    for account in (None, "acct_1X"):
        mine = sorted(at for at, _, owner in slots if owner == account)
        if global_per_s:
            assert all(later - earlier >= 1_000_000 // global_per_s - 1 for earlier, later in zip(mine, mine[1:]))
        for endpoint in "abc":
            times = sorted(at for at, name, owner in slots if owner == account and name == endpoint)
            assert all(later - earlier >= 1_000_000 // endpoint_per_s - 1 for earlier, later in zip(times, times[1:]))
    client.close()
