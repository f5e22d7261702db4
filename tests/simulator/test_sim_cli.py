"""``crossfill trigger`` against a simulator, and ``crossfill sim`` as a real process."""
from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import stripe
from click.testing import CliRunner

from fulfillment.catalog import load_catalog
from simulator import SimServer
from simulator.cli import trigger
from simulator.scenario import DEMO_CATALOG_PATH, DEPLOY, PRO
from tests.support.simulator import API_KEY, WebhookEndpoint, sim_process


def _trigger(server: SimServer, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(trigger, [*args, "--api-base", server.url, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_trigger_creates_the_catalog_once_and_prints_the_session(sim_server: SimServer,
                                                                 client: stripe.StripeClient) -> None:
    first = CliRunner().invoke(trigger, ["checkout.session.completed", "--api-base", sim_server.url])
    second = _trigger(sim_server)

    session_id = first.output.strip()
    assert first.exit_code == 0 and re.fullmatch(r"cs_test_\w+", session_id)
    assert client.v1.checkout.sessions.retrieve(session_id).payment_status == "paid"
    assert len(client.v1.prices.list({"product": DEPLOY}).data) == 1  # rule 1 still holds after two runs
    assert second["line_items"] == 1 and second["cross_sell_line_item"] is None


def test_trigger_with_the_cross_sell_and_many_items(sim_server: SimServer, client: stripe.StripeClient) -> None:
    done = _trigger(sim_server, "--cross-sell", "--items", "12")

    items = list(client.v1.checkout.sessions.line_items.list(str(done["session"])).auto_paging_iter())

    assert len(items) == 13 and items[0].price.product == PRO and items[-1].price.product == DEPLOY
    assert items[-1].id == done["cross_sell_line_item"]


def test_trigger_removed_then_added_again(sim_server: SimServer) -> None:
    removed = _trigger(sim_server, "--remove-cross-sell")
    readded = _trigger(sim_server, "--remove-cross-sell", "--cross-sell")

    assert removed["line_items"] == 1 and removed["cross_sell_line_item"] is None
    assert readded["line_items"] == 2 and readded["steps"] == [
        "created", "cross_sell_added", "cross_sell_removed", "cross_sell_added", "paid"]


@pytest.mark.parametrize(("args", "types"), [
    (["--outcome", "async_pending"], ["checkout.session.completed"]),
    (["checkout.session.async_payment_succeeded"],
     ["checkout.session.completed", "checkout.session.async_payment_succeeded"]),
    (["checkout.session.async_payment_failed"],
     ["checkout.session.completed", "checkout.session.async_payment_failed"]),
    (["checkout.session.expired"], ["checkout.session.expired"]),
])
def test_trigger_sends_the_events_of_its_outcome(sim_server: SimServer, client: stripe.StripeClient,
                                                 endpoint: WebhookEndpoint, args: list[str], types: list[str]) -> None:
    secret = client.v1.webhook_endpoints.create({"url": endpoint.url, "enabled_events": [
        "checkout.session.completed", "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed", "checkout.session.expired"]}).secret

    done = _trigger(sim_server, *args)
    received = endpoint.wait_for(lambda got: len(got) == len(types))

    events = [stripe.Webhook.construct_event(r.body, r.signature, secret) for r in received]
    assert sorted(e.type for e in events) == sorted(types)
    assert {e.data.object.id for e in events} == {done["session"]}


def test_trigger_refuses_an_outcome_its_event_cannot_have(sim_server: SimServer) -> None:
    args = ["checkout.session.expired", "--outcome", "paid", "--api-base", sim_server.url]

    result = CliRunner().invoke(trigger, args)

    assert result.exit_code == 2 and "takes no --outcome" in result.output


def test_trigger_without_a_simulator_says_so() -> None:
    result = CliRunner().invoke(trigger, ["--api-base", "http://127.0.0.1:9"])

    assert result.exit_code == 1 and "crossfill sim" in result.output


def test_the_demo_catalog_file_matches_what_trigger_creates() -> None:
    catalog = load_catalog(DEMO_CATALOG_PATH)

    assert catalog.cross_sells == {PRO: DEPLOY}


@pytest.fixture
def started_sim() -> Iterator[tuple[subprocess.Popen[str], str, WebhookEndpoint]]:
    """``crossfill sim`` on a free port, with the demo catalog and a webhook endpoint registered at start."""
    receiver = WebhookEndpoint()
    try:
        with sim_process("--catalog", str(DEMO_CATALOG_PATH), "--retry-base-ms", "50", "--webhook-url", receiver.url,
                         "--webhook-secret", "whsec_from_cli") as (proc, url):
            yield proc, url, receiver
    finally:
        receiver.stop()


@pytest.mark.integration
def test_crossfill_sim_serves_64_concurrent_clients_and_delivers(
        started_sim: tuple[subprocess.Popen[str], str, WebhookEndpoint]) -> None:
    proc, url, receiver = started_sim

    def read(_: int) -> int:
        with requests.Session() as http:
            return http.get(f"{url}/v1/events?limit=1", auth=(API_KEY, ""), timeout=10).status_code

    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(read, range(192)))
    account = requests.get(f"{url}/sim/account", timeout=5).json()
    done = CliRunner().invoke(trigger, ["--api-base", url, "--cross-sell", "--json"], catch_exceptions=False)
    completed = receiver.wait_for(lambda got: any(r.event["type"] == "checkout.session.completed" for r in got))
    proc.send_signal(signal.SIGTERM)

    assert statuses == [200] * 192
    assert account["cross_sells"] == {PRO: DEPLOY} and account["default_tax_behavior"] == "exclusive"
    event = next(r for r in completed if r.event["type"] == "checkout.session.completed")
    assert stripe.Webhook.construct_event(event.body, event.signature, "whsec_from_cli").data.object.id == \
        json.loads(done.output)["session"]
    assert proc.wait(timeout=10) == 0
