"""Stripe's rate limits, enforced by the simulator when asked: per account (25/s test, 100/s live) and
25/s per endpoint as token buckets, a 429 with Stripe's body beyond, and the tallies in /sim/stats."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import stripe
from flask.testing import FlaskClient

from simulator import SimConfig, SimServer, Simulator, create_sim_app
from simulator.ratelimit import MODES, RateLimiter, RateLimits
from tests.support.simulator import API_KEY, sim_process

AUTH = {"Authorization": f"Bearer {API_KEY}"}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _app(mode: str, clock: Clock) -> Iterator[FlaskClient]:
    simulator = Simulator(SimConfig(rate_limits=MODES[mode]), clock=clock)
    try:
        yield create_sim_app(simulator=simulator).test_client()
    finally:
        simulator.close()


@pytest.fixture
def test_mode(clock: Clock) -> Iterator[FlaskClient]:
    yield from _app("test", clock)


@pytest.fixture
def live_mode(clock: Clock) -> Iterator[FlaskClient]:
    yield from _app("live", clock)


def _statuses(http: FlaskClient, path: str, times: int) -> list[int]:
    return [http.get(path, headers=AUTH).status_code for _ in range(times)]


# -- the limiter alone -------------------------------------------------------------------------------

def test_the_account_limit_counts_every_endpoint(clock: Clock) -> None:
    limiter = RateLimiter(MODES["test"], clock=clock)

    first = [limiter.admit("platform", f"GET /v1/thing_{n % 5}/{{id}}") for n in range(25)]
    refused = limiter.admit("platform", "GET /v1/other")
    other_account = limiter.admit("acct_other", "GET /v1/other")

    assert first == [None] * 25 and other_account is None
    assert refused is not None and (refused.scope, refused.limit_per_s) == ("account", 25)


def test_a_spent_bucket_refills_one_request_per_interval(clock: Clock) -> None:
    limiter = RateLimiter(MODES["test"], clock=clock)
    for _ in range(25):
        limiter.admit("platform", "GET /v1/x")

    clock.now += 0.039  # 1/25 s is 0.04 s
    too_soon = limiter.admit("platform", "GET /v1/x")
    clock.now += 0.001
    on_time = limiter.admit("platform", "GET /v1/x")
    right_after = limiter.admit("platform", "GET /v1/x")

    assert too_soon is not None and on_time is None and right_after is not None


def test_a_client_paced_at_the_rate_is_never_refused_even_with_jitter(clock: Clock) -> None:
    limiter = RateLimiter(MODES["test"], clock=clock)
    refused = 0
    for n in range(250):  # ten seconds at 25/s, each arrival up to 30 ms early or late
        clock.now = 1000.0 + n * 0.04 + (0.03 if n % 2 else -0.03)
        refused += limiter.admit("platform", "GET /v1/checkout/sessions/{id}") is not None

    assert refused == 0


def test_the_long_run_rate_is_the_limit(clock: Clock) -> None:
    limiter = RateLimiter(MODES["test"], clock=clock)
    admitted = 0
    for n in range(10_000):  # ten seconds of a client trying 1,000 times a second
        clock.now = 1000.0 + n * 0.001
        admitted += limiter.admit("platform", "GET /v1/x") is None

    assert admitted == 25 + 249  # one second's burst, then 25/s over the 9.999 s that follow


def test_the_endpoint_limit_holds_under_a_higher_account_limit(clock: Clock) -> None:
    limiter = RateLimiter(MODES["live"], clock=clock)

    one_endpoint = [limiter.admit("platform", "GET /v1/checkout/sessions/{id}") for _ in range(26)]
    others = [limiter.admit("platform", f"GET /v1/endpoint_{n}") for n in range(75)]
    over_account = limiter.admit("platform", "GET /v1/endpoint_x")

    assert one_endpoint[:25] == [None] * 25 and one_endpoint[25] is not None
    assert one_endpoint[25].scope == "endpoint"
    assert others == [None] * 75  # 25 + 75 = the account's 100
    assert over_account is not None and over_account.scope == "account"


def test_a_refused_request_takes_no_token(clock: Clock) -> None:
    limiter = RateLimiter(RateLimits("custom", None, 2), clock=clock)
    limiter.admit("platform", "GET /v1/x")
    limiter.admit("platform", "GET /v1/x")
    for _ in range(10):
        assert limiter.admit("platform", "GET /v1/x") is not None

    clock.now += 0.5  # one token back, however many were refused meanwhile

    assert limiter.admit("platform", "GET /v1/x") is None
    assert limiter.admit("platform", "GET /v1/x") is not None


def test_concurrent_requests_never_get_past_the_limit(clock: Clock) -> None:
    limiter = RateLimiter(MODES["test"], clock=clock)
    admitted = []
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        admitted.extend(r is None for r in (limiter.admit("platform", "GET /v1/x") for _ in range(50)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(admitted) == 25 and len(admitted) == 400


# -- over HTTP -------------------------------------------------------------------------------------------

def test_test_mode_answers_stripes_429_past_25_a_second_and_counts_it(test_mode: FlaskClient, clock: Clock) -> None:
    product = test_mode.post("/v1/products", data={"name": "Limited"}, headers=AUTH).get_json()
    clock.now += 1

    statuses = _statuses(test_mode, f"/v1/products/{product['id']}", 26)
    refused = test_mode.get(f"/v1/products/{product['id']}", headers=AUTH)
    elsewhere = test_mode.get("/v1/prices", headers=AUTH)  # the account's 25 are spent too
    stats = test_mode.get("/sim/stats").get_json()

    assert statuses == [200] * 25 + [429]
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    body = refused.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "code", "message"}
    assert (body["error"]["type"], body["error"]["code"]) == ("invalid_request_error", "rate_limit")
    assert body["error"]["message"].startswith("Request rate limit exceeded")
    assert elsewhere.status_code == 429
    assert stats["endpoints"]["GET /v1/products/{id}"] == {"requests": 27, "rate_limited": 2}
    assert stats["endpoints"]["POST /v1/products"] == {"requests": 1, "rate_limited": 0}
    assert (stats["requests"], stats["rate_limited"], stats["rate_limits"]) == (29, 3, "test")
    assert stats["accounts"] == {"platform": {"requests": 29, "rate_limited": 3}}


def test_live_mode_allows_100_a_second_but_25_per_endpoint(live_mode: FlaskClient, clock: Clock) -> None:
    sessions = _statuses(live_mode, "/v1/checkout/sessions/cs_test_missing", 26)
    products = _statuses(live_mode, "/v1/products", 26)
    events = _statuses(live_mode, "/v1/events", 25)
    webhook_endpoints = _statuses(live_mode, "/v1/webhook_endpoints", 25)
    over_account = _statuses(live_mode, "/v1/prices", 1)
    clock.now += 1
    after_a_second = _statuses(live_mode, "/v1/checkout/sessions/cs_test_missing", 1)

    assert sessions == [404] * 25 + [429]  # a 404 is a request too; every id is one endpoint
    assert products == [200] * 25 + [429]
    assert events == webhook_endpoints == [200] * 25 and over_account == [429]  # 100 for the account
    assert after_a_second == [404]


def test_dashboard_calls_are_never_limited(test_mode: FlaskClient) -> None:
    statuses = [test_mode.get("/sim/health").status_code for _ in range(60)]

    assert statuses == [200] * 60 and test_mode.get("/sim/stats").get_json()["requests"] == 0


def test_limits_are_off_by_default_and_stats_still_count(clock: Clock) -> None:
    for http in _app("off", clock):
        statuses = _statuses(http, "/v1/products", 100)
        stats = http.delete("/sim/stats").get_json()
        reset = http.get("/sim/stats").get_json()

        assert statuses == [200] * 100
        assert stats["rate_limits"] == "off" and reset["requests"] == 0


def test_stripe_python_sees_a_rate_limit_error(clock: Clock) -> None:
    simulator = Simulator(SimConfig(rate_limits=RateLimits("custom", None, 1)), clock=clock)
    with SimServer(simulator=simulator) as server:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": server.url}, max_network_retries=0)
        client.v1.products.list()

        with pytest.raises(stripe.RateLimitError) as caught:
            client.v1.products.list()

    assert caught.value.http_status == 429 and caught.value.json_body["error"]["code"] == "rate_limit"


@pytest.mark.integration
def test_crossfill_sim_rate_limits_test_holds_a_burst_to_25_a_second() -> None:
    with sim_process("--rate-limits", "test") as (_, url):

        def read(_: int) -> int:
            return requests.get(f"{url}/v1/events", auth=(API_KEY, ""), timeout=30).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(read, range(200)))
        elapsed = time.monotonic() - started
        stats: dict[str, Any] = requests.get(f"{url}/sim/stats", timeout=10).json()

    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429}
    assert admitted <= 25 * (math.ceil(elapsed) + 1)  # however slow the machine, never above the limit
    assert stats["endpoints"]["GET /v1/events"] == {"requests": 200, "rate_limited": statuses.count(429)}
