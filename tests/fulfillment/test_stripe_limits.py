"""The Stripe client under the shared rate limiter, and as a connected account (Connect), against a real
local HTTP server; the limiter's state on fakeredis."""
from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
import redis
import requests

from fulfillment.errors import TransientError
from fulfillment.ratelimit import RateLimiter, RateLimits
from fulfillment.settings import StripeSettings
from fulfillment.stats import Stats
from fulfillment.stripe_api import StripeClient
from tests.support.fulfillment_fixtures import (
    API_KEY,
    Reply,
    ScriptedServer,
    always,
    stripe_line_item,
    stripe_price,
    stripe_product,
    stripe_session,
)

SESSION = "GET /v1/checkout/sessions/{id}"
LINE_ITEMS = "GET /v1/checkout/sessions/{id}/line_items"
NOW_US = 1_800_000_000_000_000


@pytest.fixture
def store() -> Iterator[redis.Redis]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def limiter(store: redis.Redis, slept: list[float]) -> RateLimiter:
    # 10 calls/s per endpoint, a clock that stands still: every call's wait shows in *slept*.
    limits = RateLimits(global_per_s=100, endpoint_per_s=10, max_wait_s=5, headroom=0)
    return RateLimiter(store, limits, sleep=slept.append, clock=lambda: NOW_US)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def client_for(base: str, http: requests.Session, limiter: RateLimiter | None,
               stats: Stats | None = None) -> StripeClient:
    settings = StripeSettings(api_key=API_KEY, api_base=base, connect_timeout=0.5, read_timeout=2)
    return StripeClient(settings, http=http, limiter=limiter, stats=stats)


def test_every_call_takes_a_slot_of_its_endpoint(http: requests.Session, limiter: RateLimiter,
                                                 slept: list[float]) -> None:
    reply = Reply(200, stripe_session("cs_test_1"))
    with ScriptedServer(always(reply)) as server:
        client = client_for(server.url, http, limiter)
        for _ in range(3):
            client.retrieve_session("cs_test_1")
    assert len(server.seen) == 3
    # 10/s per endpoint: the second call waited 0.1 s, the third 0.2 s.
    assert slept == [pytest.approx(0.1), pytest.approx(0.2)]


def test_line_items_count_against_their_own_endpoint(http: requests.Session, limiter: RateLimiter,
                                                      store: redis.Redis) -> None:
    page = {"object": "list", "data": [stripe_line_item("li_1", stripe_price("price_1", stripe_product("prod_pro")))], "has_more": False,
            "url": "/v1/checkout/sessions/cs_test_1/line_items"}
    with ScriptedServer(always(Reply(200, page))) as server:
        list(client_for(server.url, http, limiter).iter_line_items("cs_test_1", account="acct_1Shop"))
    assert sorted(store.keys("crossfill:ratelimit:*")) == [
        "crossfill:ratelimit:{test:acct_1Shop}:ep:" + LINE_ITEMS,
        "crossfill:ratelimit:{test:acct_1Shop}:global",
    ]


def test_a_connected_account_is_read_with_stripe_account(http: requests.Session) -> None:
    with ScriptedServer(always(Reply(200, stripe_session("cs_test_1")))) as server:
        client = client_for(server.url, http, None)
        client.retrieve_session("cs_test_1", account="acct_1Shop")
        client.retrieve_session("cs_test_1")
    connected, own = server.seen
    assert connected.headers["stripe-account"] == "acct_1Shop"
    assert "stripe-account" not in own.headers


def test_a_429_cools_the_endpoint_down_for_every_worker(http: requests.Session, limiter: RateLimiter,
                                                          store: redis.Redis, slept: list[float]) -> None:
    limited = Reply(429, {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many"}},
                    {"Retry-After": "2"})
    with ScriptedServer(always(limited)) as server:
        with pytest.raises(TransientError):
            client_for(server.url, http, limiter).retrieve_session("cs_test_1", account="acct_1Shop")
    cool = "crossfill:ratelimit:{test:acct_1Shop}:cool:" + SESSION
    assert int(store.get(cool) or 0) == NOW_US + 2_000_000
    # Another worker's next call to that endpoint waits the cool-down out first.
    slot = limiter.reserve("acct_1Shop", SESSION)
    assert (slot.granted, slot.wait_s, slot.limited_by) == (False, 2.0, "cooldown")


@pytest.mark.parametrize("reply", [
    Reply(429, {"error": {"type": "invalid_request_error", "code": "lock_timeout", "message": "locked"}}),
    Reply(429, {"error": {"message": "no"}}, {"Stripe-Should-Retry": "false"}),
    Reply(503, {"error": {"message": "down"}}, {"Retry-After": "3"}),
])
def test_other_failures_cool_nothing_down(reply: Reply, http: requests.Session, limiter: RateLimiter,
                                          store: redis.Redis) -> None:
    with ScriptedServer(always(reply)) as server:
        with pytest.raises(Exception):  # noqa: B017,PT011 - the error's type is test_stripe_api's subject
            client_for(server.url, http, limiter).retrieve_session("cs_test_1")
    assert store.keys("crossfill:ratelimit:*:cool:*") == []


def test_a_slot_too_far_away_is_a_transient_error_before_any_call(http: requests.Session,
                                                                   limiter: RateLimiter) -> None:
    limiter.cool_down(None, SESSION, 30)
    with ScriptedServer(always(Reply(200, stripe_session("cs_test_1")))) as server:
        with pytest.raises(TransientError) as caught:
            client_for(server.url, http, limiter).retrieve_session("cs_test_1")
    assert server.seen == []
    assert caught.value.retry_after == 30


def test_waits_429s_and_deferred_calls_are_counted_for_metrics(http: requests.Session, store: redis.Redis) -> None:
    now = [NOW_US]

    def sleep(seconds: float) -> None:  # time passes while a caller waits
        now[0] += round(seconds * 1_000_000)

    limiter = RateLimiter(store, RateLimits(global_per_s=100, endpoint_per_s=10, max_wait_s=5, headroom=0),
                          sleep=sleep, clock=lambda: now[0])
    stats = Stats(store)
    with ScriptedServer(always(Reply(200, stripe_session("cs_test_1")))) as server:
        client = client_for(server.url, http, limiter, stats)
        client.retrieve_session("cs_test_1")
        client.retrieve_session("cs_test_1")  # waits 0.1 s for its slot
    with ScriptedServer(always(Reply(429, {"error": {"code": "rate_limit", "message": "Too many"}}))) as server:
        with pytest.raises(TransientError):  # a 429: the endpoint cools down for 1 s (no Retry-After)
            client_for(server.url, http, limiter, stats).retrieve_session("cs_test_1")
        with pytest.raises(TransientError):  # waits the cool-down out, then meets another 429
            client_for(server.url, http, limiter, stats).retrieve_session("cs_test_1")
    counts = stats.read_all()
    assert counts["stripe_api_calls"] == {SESSION: 4}
    assert counts["stripe_rate_limited"] == {SESSION: 2}
    # Calls 2 and 3 waited 0.1 s each for their slot (10/s), call 4 the 1 s cool-down.
    assert counts["stripe_rate_limit_waited_ms"] == {SESSION: 100 + 100 + 1000}
    assert "stripe_rate_limit_deferred" not in counts
    # A cool-down longer than a call may wait: the call is put off (its task retries), and counted.
    limiter.cool_down(None, SESSION, 60)
    with pytest.raises(TransientError):
        client_for("http://127.0.0.1:9", http, limiter, stats).retrieve_session("cs_test_1")
    assert stats.read("stripe_rate_limit_deferred") == {SESSION: 1}


def test_metrics_show_the_rate_limiters_counters(store: redis.Redis) -> None:
    from webhooks.metrics import ReceiverMetrics, StateCollector

    stats = Stats(store)
    stats.incr_many({("stripe_rate_limited", SESSION): 2, ("stripe_rate_limit_waited_ms", SESSION): 1500,
                     ("stripe_rate_limit_deferred", SESSION): 1})
    text = ReceiverMetrics(StateCollector(store, ("events",))).render().decode()
    assert 'crossfill_stripe_rate_limited_total{endpoint="GET /v1/checkout/sessions/{id}"} 2.0' in text
    assert 'crossfill_stripe_rate_limit_wait_seconds_total{endpoint="GET /v1/checkout/sessions/{id}"} 1.5' in text
    assert 'crossfill_stripe_rate_limit_deferred_total{endpoint="GET /v1/checkout/sessions/{id}"} 1.0' in text
