"""What the rate limiter's Lua scripts must do, written once and run on fakeredis (tests/fulfillment) and on a
real redis-server (tests/integration): a subclass provides the ``client`` fixture."""
from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from fulfillment.errors import TransientError
from fulfillment.ratelimit import RateLimiter, RateLimits

SESSION = "GET /v1/checkout/sessions/{id}"
LINE_ITEMS = "GET /v1/checkout/sessions/{id}/line_items"


class Clock:
    """A settable "now" in microseconds, near today's (so numbers have as many digits as real ones)."""

    def __init__(self) -> None:
        self.us = int(time.time()) * 1_000_000

    def __call__(self) -> int:
        return self.us

    def advance(self, seconds: float) -> None:
        self.us += round(seconds * 1_000_000)


class LimiterContract:
    """Reservations, both limits together, accounts and modes apart, the maximum wait, cool-downs."""

    @pytest.fixture
    def clock(self) -> Clock:
        return Clock()

    @pytest.fixture
    def make(self, client: redis.Redis, clock: Clock) -> Callable[..., RateLimiter]:
        def build(global_per_s: float = 100, endpoint_per_s: float = 25, *, max_wait_s: float = 10,
                  burst: int = 1, mode: str = "test") -> RateLimiter:
            limits = RateLimits(global_per_s=global_per_s, endpoint_per_s=endpoint_per_s, max_wait_s=max_wait_s,
                                burst=burst, headroom=0)
            return RateLimiter(client, limits, mode=mode, clock=clock, sleep=lambda s: None)

        return build

    def test_one_endpoint_goes_at_its_rate(self, make: Callable[..., RateLimiter]) -> None:
        # Given an account allowed 100/s, 25/s per endpoint, and 5 calls at once to one endpoint,
        limiter = make(100, 25)
        # when each reserves a slot, then they are told to go 40 ms apart, the endpoint's limit binding.
        slots = [limiter.reserve(None, SESSION) for _ in range(5)]
        assert [round(slot.wait_s, 6) for slot in slots] == [0.0, 0.04, 0.08, 0.12, 0.16]
        assert all(slot.granted for slot in slots)
        assert [slot.limited_by for slot in slots] == ["none"] + ["endpoint"] * 4

    def test_the_global_limit_binds_across_endpoints(self, make: Callable[..., RateLimiter]) -> None:
        limiter = make(25, 25)
        slots = [limiter.reserve(None, endpoint) for endpoint in (SESSION, LINE_ITEMS, SESSION, LINE_ITEMS)]
        assert [round(slot.wait_s, 6) for slot in slots] == [0.0, 0.04, 0.08, 0.12]
        assert slots[1].limited_by == "global"

    def test_both_limits_are_kept_in_one_reservation(self, make: Callable[..., RateLimiter]) -> None:
        # Global 100/s (10 ms apart), 25/s per endpoint (40 ms apart), two endpoints alternating.
        limiter = make(100, 25)
        slots = [limiter.reserve(None, endpoint) for endpoint in (SESSION, LINE_ITEMS, SESSION, LINE_ITEMS)]
        assert [round(slot.wait_s, 6) for slot in slots] == [0.0, 0.01, 0.04, 0.05]
        assert [slot.limited_by for slot in slots] == ["none", "global", "endpoint", "global"]

    def test_accounts_and_modes_are_limited_apart(self, make: Callable[..., RateLimiter]) -> None:
        test, live = make(25, 25), make(25, 25, mode="live")
        assert test.reserve(None, SESSION).wait_s == 0
        assert test.reserve("acct_1Conn", SESSION).wait_s == 0
        assert test.reserve("acct_2Conn", SESSION).wait_s == 0
        assert live.reserve(None, SESSION).wait_s == 0
        assert test.reserve("acct_1Conn", SESSION).wait_s == pytest.approx(0.04)

    def test_the_headroom_paces_a_little_under_the_limit(self, client: redis.Redis, clock: Clock) -> None:
        limits = RateLimits(global_per_s=0, endpoint_per_s=20, headroom=0.2)  # 16/s: 62.5 ms apart
        limiter = RateLimiter(client, limits, clock=clock, sleep=lambda s: None)
        assert [limiter.reserve(None, SESSION).wait_s for _ in range(3)] == [0, 0.0625, 0.125]

    def test_slots_free_up_as_time_passes(self, make: Callable[..., RateLimiter], clock: Clock) -> None:
        limiter = make(100, 25)
        for _ in range(3):
            limiter.reserve(None, SESSION)
        clock.advance(0.1)  # the third slot was at 80 ms: the next one is at 120 ms
        assert limiter.reserve(None, SESSION).wait_s == pytest.approx(0.02)
        clock.advance(1.0)
        assert limiter.reserve(None, SESSION).wait_s == 0

    def test_a_burst_goes_at_once_then_at_the_rate(self, make: Callable[..., RateLimiter]) -> None:
        limiter = make(0, 10, burst=3)
        waits = [round(limiter.reserve(None, SESSION).wait_s, 6) for _ in range(5)]
        assert waits == [0.0, 0.0, 0.0, 0.1, 0.2]

    def test_a_wait_past_the_maximum_is_refused_and_reserves_nothing(self, make: Callable[..., RateLimiter]) -> None:
        limiter = make(0, 10, max_wait_s=0.25)
        waits = [limiter.reserve(None, SESSION) for _ in range(3)]  # 0, 0.1, 0.2
        refused = limiter.reserve(None, SESSION)
        assert refused.granted is False
        assert refused.wait_s == pytest.approx(0.3)
        # Nothing was reserved by the refusal: the next caller is told the same.
        assert limiter.reserve(None, SESSION).wait_s == pytest.approx(0.3)
        assert all(slot.granted for slot in waits)

    def test_acquire_raises_a_transient_error_with_retry_after(self, make: Callable[..., RateLimiter]) -> None:
        limiter = make(0, 10, max_wait_s=0.15)
        limiter.acquire(None, SESSION)
        limiter.acquire(None, SESSION)
        with pytest.raises(TransientError, match="rate limit") as caught:
            limiter.acquire(None, SESSION)
        assert caught.value.retry_after == 1  # 0.2 s, rounded up to whole seconds

    def test_a_cool_down_holds_off_the_endpoint_only(self, make: Callable[..., RateLimiter], clock: Clock) -> None:
        limiter = make(100, 25)
        limiter.cool_down("acct_1Conn", SESSION, 2.0)
        # Callers of the endpoint are told to wait out the cool-down; no slot is reserved for them,
        slot = limiter.reserve("acct_1Conn", SESSION)
        assert (slot.granted, slot.wait_s, slot.limited_by) == (False, pytest.approx(2.0), "cooldown")
        # so the account's other endpoints, and other accounts, go on at once.
        assert limiter.reserve("acct_1Conn", LINE_ITEMS).wait_s == 0
        assert limiter.reserve(None, SESSION).wait_s == 0
        # A shorter cool-down does not shorten a longer one;
        limiter.cool_down("acct_1Conn", SESSION, 0.5)
        clock.advance(1.0)
        assert limiter.reserve("acct_1Conn", SESSION).wait_s == pytest.approx(1.0)
        # its end lets callers in again, paced.
        clock.advance(1.0)
        assert [limiter.reserve("acct_1Conn", SESSION).wait_s for _ in range(2)] == [0, pytest.approx(0.04)]

    def test_acquire_waits_out_a_cool_down_then_takes_a_slot(self, client: redis.Redis, clock: Clock) -> None:
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            clock.advance(seconds)

        limiter = RateLimiter(client, RateLimits(global_per_s=25, endpoint_per_s=25, max_wait_s=5, headroom=0), clock=clock,
                              sleep=sleep)
        limiter.cool_down(None, SESSION, 1.5)
        assert limiter.acquire(None, SESSION) == pytest.approx(1.5)
        assert slept == [pytest.approx(1.5)]

    def test_a_cool_down_past_the_maximum_wait_makes_callers_retry(self, make: Callable[..., RateLimiter]) -> None:
        limiter = make(100, 25, max_wait_s=1)
        limiter.cool_down(None, SESSION, 30)
        with pytest.raises(TransientError) as caught:
            limiter.acquire(None, SESSION)
        assert caught.value.retry_after == 30

    def test_keys_expire_once_the_limit_is_free_again(self, make: Callable[..., RateLimiter],
                                                      client: redis.Redis) -> None:
        limiter = make(100, 25)
        limiter.reserve("acct_1Conn", SESSION)
        limiter.cool_down("acct_1Conn", SESSION, 2.0)
        keys = client.keys("crossfill:ratelimit:*")
        assert len(keys) == 3
        assert all(0 < client.pttl(key) <= 3_000 for key in keys)

    def test_redis_time_is_the_clock_when_none_is_given(self, client: redis.Redis) -> None:
        limiter = RateLimiter(client, RateLimits(global_per_s=0, endpoint_per_s=10, headroom=0), sleep=lambda s: None)
        first, second = limiter.reserve(None, SESSION), limiter.reserve(None, SESSION)
        assert first.wait_s == 0
        assert 0.05 < second.wait_s <= 0.1
