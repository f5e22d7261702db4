"""Fault injection on the simulated /v1 API: 500s, 429 with Retry-After, latency, timeouts."""
from __future__ import annotations

import time

import pytest
import requests
import stripe

from simulator import SimServer
from simulator.client import SimClient
from simulator.errors import InjectedFailure, InvalidRequest, RateLimited, RemoteError
from simulator.faults import FaultInjector, FaultPlan, plan_faults
from simulator.params import Params
from tests.support.simulator import API_KEY


def test_error_rate_one_fails_every_api_call_but_not_sim_calls(client: stripe.StripeClient, sim: SimClient) -> None:
    sim.post("/sim/faults", {"error_rate": 1})

    with pytest.raises(stripe.APIError) as caught:
        client.v1.products.create({"name": "Doomed"})
    still_there = sim.get("/sim/faults")
    sim.delete("/sim/faults")

    assert caught.value.http_status == 500
    assert still_there["error_rate"] == 1.0
    assert client.v1.products.create({"name": "Fine"}).object == "product"


def test_path_prefix_limits_faults_to_matching_paths(client: stripe.StripeClient, sim: SimClient) -> None:
    sim.post("/sim/faults", {"error_rate": 1, "path_prefix": "/v1/checkout/sessions"})

    product = client.v1.products.create({"name": "Unaffected"})
    with pytest.raises(stripe.APIError):
        client.v1.checkout.sessions.retrieve("cs_test_any")

    assert product.name == "Unaffected"


def test_rate_limit_answers_429_with_retry_after(sim_server: SimServer, sim: SimClient) -> None:
    sim.post("/sim/faults", {"rate_limit_per_s": 2})
    with requests.Session() as http:
        statuses = [http.get(f"{sim_server.url}/v1/products", auth=(API_KEY, ""), timeout=5) for _ in range(4)]

    limited = [r for r in statuses if r.status_code == 429]
    assert [r.status_code for r in statuses[:2]] == [200, 200] and limited
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["error"]["code"] == "rate_limit"


def test_stripe_python_sees_a_rate_limit_error(client: stripe.StripeClient, sim: SimClient) -> None:
    sim.post("/sim/faults", {"rate_limit_per_s": 1})
    client.v1.products.list()

    with pytest.raises(stripe.RateLimitError) as caught:
        client.v1.products.list()

    assert caught.value.http_status == 429


def test_latency_delays_api_calls_only(client: stripe.StripeClient, sim: SimClient) -> None:
    sim.post("/sim/faults", {"latency_ms": 300})

    started = time.monotonic()
    client.v1.products.list()
    api_s = time.monotonic() - started
    started = time.monotonic()
    sim.get("/sim/health")
    sim_s = time.monotonic() - started

    assert api_s >= 0.3 and sim_s < 0.3


def test_timeout_rate_holds_the_request_past_the_client_timeout(sim_server: SimServer, sim: SimClient) -> None:
    sim.post("/sim/faults", {"timeout_rate": 1, "timeout_ms": 400})

    with pytest.raises(requests.Timeout):
        requests.get(f"{sim_server.url}/v1/products", auth=(API_KEY, ""), timeout=0.1)
    patient = requests.get(f"{sim_server.url}/v1/products", auth=(API_KEY, ""), timeout=5)

    assert patient.status_code == 504


def test_a_faulted_post_is_not_remembered_under_its_idempotency_key(client: stripe.StripeClient,
                                                                    sim: SimClient) -> None:
    sim.post("/sim/faults", {"error_rate": 1})
    with pytest.raises(stripe.APIError):
        client.v1.products.create({"name": "Retry me"}, {"idempotency_key": "key-1"})
    sim.delete("/sim/faults")

    retried = client.v1.products.create({"name": "Retry me"}, {"idempotency_key": "key-1"})

    assert retried.last_response.headers.get("Idempotent-Replayed") is None


@pytest.mark.parametrize(("params", "param"), [
    ({"error_rate": "2"}, "error_rate"),
    ({"timeout_rate": "-0.1"}, "timeout_rate"),
    ({"rate_limit_per_s": "0"}, "rate_limit_per_s"),
    ({"latency_ms": "soon"}, "latency_ms"),
    ({"path_prefix": "/sim"}, "path_prefix"),
    ({"colour": "red"}, "colour"),
])
def test_bad_fault_params_are_400_naming_the_param(sim: SimClient, params: dict[str, str], param: str) -> None:
    with pytest.raises(RemoteError) as caught:
        sim.post("/sim/faults", params)

    assert (caught.value.status, caught.value.body["error"]["param"]) == (400, param)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_refills_at_the_configured_rate() -> None:
    clock = _Clock()
    injector = FaultInjector(clock)
    injector.set_plan(FaultPlan(rate_limit_per_s=2))

    burst = [injector.decide("/v1/products").error for _ in range(3)]
    clock.now += 0.5
    refilled = injector.decide("/v1/products").error

    assert burst[:2] == [None, None] and isinstance(burst[2], RateLimited)
    assert burst[2].retry_after_s == 1 and refilled is None


def test_a_seeded_error_rate_is_reproducible_and_roughly_right() -> None:
    def draws() -> list[bool]:
        injector = FaultInjector()
        injector.set_plan(FaultPlan(error_rate=0.3, seed=7))
        return [isinstance(injector.decide("/v1/x").error, InjectedFailure) for _ in range(1000)]

    first = draws()

    assert first == draws() and 250 < sum(first) < 350


def test_plan_defaults_to_the_whole_api() -> None:
    plan = plan_faults(Params({"error_rate": "0.5"}))

    assert (plan.path_prefix, plan.error_rate, plan.rate_limit_per_s) == ("/v1", 0.5, None)
    with pytest.raises(InvalidRequest):
        plan_faults(Params({"seed": "x"}))
