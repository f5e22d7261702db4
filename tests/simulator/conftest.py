"""Fixtures for the simulator's tests: a real simulator on a free port, stripe-python pointed at it,
and a local webhook endpoint that records what it receives."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from simulator import SimConfig, SimServer
from simulator.client import SimClient
from tests.support.simulator import API_KEY, Catalog, WebhookEndpoint


@pytest.fixture
def sim_config() -> SimConfig:
    """A simulator with a compressed retry schedule (30 ms, 60 ms, 120 ms) and short timeouts."""
    return SimConfig(retry_base_ms=30, retry_max_attempts=4, delivery_timeout_s=1.0, delivery_workers=8)


@pytest.fixture
def sim_server(sim_config: SimConfig) -> Iterator[SimServer]:
    """The simulator, served over real HTTP in a background thread."""
    with SimServer(sim_config) as server:
        yield server


@pytest.fixture
def client(sim_server: SimServer) -> stripe.StripeClient:
    """stripe-python's StripeClient against the simulator, without client-side retries."""
    return stripe.StripeClient(API_KEY, base_addresses={"api": sim_server.url}, max_network_retries=0)


@pytest.fixture
def sim(sim_server: SimServer) -> Iterator[SimClient]:
    """A client of the /sim endpoints (Dashboard, buyer, delivery control, faults)."""
    with SimClient(sim_server.url, API_KEY) as sim_client:
        yield sim_client


@pytest.fixture
def endpoint() -> Iterator[WebhookEndpoint]:
    """A webhook endpoint that answers 200 unless scripted otherwise."""
    receiver = WebhookEndpoint()
    yield receiver
    receiver.stop()


@pytest.fixture
def catalog(client: stripe.StripeClient) -> Catalog:
    return Catalog(client)
