"""The order API on the real pipeline: simulator, receiver, Celery worker, and the console in-process.

``POST /api/v1/orders/{id}/fulfill`` (a success page) and the webhook go through the same idempotent
path: whichever arrives first, and however often, every item is fulfilled once.
"""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask.testing import FlaskClient

from console.app import create_console_app
from console.settings import load_console_settings
from fulfillment.ledger import TO_REPORT
from fulfillment.liveness import alive_workers
from fulfillment.settings import load_settings
from tests.support.console import TOKENS, token_entries
from tests.support.processes import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
MERCHANT = {"Authorization": f"Bearer {TOKENS['merchant']}"}


@pytest.fixture
def console(fresh: Stack) -> Iterator[FlaskClient]:  # noqa: F811 - the imported fixture
    tokens = token_entries()
    app = create_console_app(load_settings(fresh.env), load_console_settings({"CROSSFILL_CONSOLE_TOKENS": tokens}))
    yield app.test_client()
    app.extensions["crossfill_console"].service.runtime.close()


def test_the_success_page_fulfils_when_the_webhook_is_lost(fresh: Stack, console: FlaskClient) -> None:  # noqa: F811
    # Given a buyer who pays while every webhook delivery is lost
    fresh.sim.post("/sim/faults", {"webhook_drop_rate": 1})
    session_id = fresh.shop.buy(cross_sell=True)
    assert fresh.order(session_id) is None

    # When the success page asks the order API to fulfil, twice (a reload)
    first = console.post(f"/api/v1/orders/{session_id}/fulfill", headers=MERCHANT)
    second = console.post(f"/api/v1/orders/{session_id}/fulfill", headers=MERCHANT)

    # Then the order is fulfilled, each item once, and the answer said where it stood
    assert first.status_code in (200, 202), first.json
    assert first.json["status"] in ("fulfilling", "fulfilled") and first.json["dispatched"] in (0, 2)
    assert second.status_code in (200, 202)
    fresh.wait_order(session_id, "fulfilled")
    for key in fresh.keys_of(session_id):
        assert fresh.target.calls[key] == 1
    shown = console.get(f"/api/v1/orders/{session_id}", headers=MERCHANT).json
    assert shown["status"] == "fulfilled" and sorted(i["cross_sell"] for i in shown["items"]) == [False, True]
    # and the worker counted it in the cross-sell rollups itself (no report was read to drain it)
    client = fresh.redis.client()
    wait_until(lambda: client.hexists(f"crossfill:order:{session_id}", "reported"), timeout=10,
               what="the worker to count the order in the report")
    assert not client.sismember(TO_REPORT, session_id)


def test_webhook_and_success_page_racing_fulfil_once(fresh: Stack, console: FlaskClient) -> None:  # noqa: F811
    # Given a buyer whose webhook is delivered while the success page asks to fulfil, several times at once
    session_id = fresh.shop.buy(cross_sell=True)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: console.post(f"/api/v1/orders/{session_id}/fulfill", headers=MERCHANT),
                                range(4)))

    # Then every item is fulfilled exactly once
    assert all(answer.status_code in (200, 202) for answer in answers), [a.json for a in answers]
    fresh.wait_order(session_id, "fulfilled")
    for key in fresh.keys_of(session_id):
        wait_until(lambda key=key: fresh.target.calls.get(key, 0) >= 1, timeout=30, what=f"a call for {key}")
        assert fresh.target.calls[key] == 1
    again = console.post(f"/api/v1/orders/{session_id}/fulfill", headers=MERCHANT)
    assert again.status_code == 200 and again.json["status"] == "fulfilled" and again.json["dispatched"] == 0


def test_an_unpaid_session_is_not_fulfilled_and_an_unknown_one_is_404(fresh: Stack,  # noqa: F811
                                                                       console: FlaskClient) -> None:
    session = fresh.shop.open_session()

    unpaid = console.post(f"/api/v1/orders/{session['id']}/fulfill", headers=MERCHANT)
    unknown = console.post("/api/v1/orders/cs_test_doesnotexist/fulfill", headers=MERCHANT)

    assert unpaid.status_code == 200 and unpaid.json["status"] == "awaiting_payment"
    assert unpaid.json["dispatched"] == 0
    assert unknown.status_code == 404


def test_workers_write_heartbeats_the_console_counts(fresh: Stack, console: FlaskClient) -> None:  # noqa: F811
    wait_until(lambda: bool(alive_workers(fresh.redis.client())), timeout=30, what="a worker heartbeat")

    status = console.get("/api/v1/status", headers={"Authorization": f"Bearer {TOKENS['viewer']}"}).json

    assert status["workers"]


def test_a_merchant_fulfils_only_sessions_of_its_own_accounts(fresh: Stack) -> None:  # noqa: F811
    from simulator.client import SimClient
    from tests.support.shop import Shop

    # Given two connected accounts, each with a merchant token, and a buyer of shop B whose webhook is lost
    fresh.sim.post("/sim/faults", {"webhook_drop_rate": 1})
    shop_a, shop_b = (fresh.sim.post("/v1/accounts", {"type": "standard"})["id"] for _ in range(2))
    token_a, token_b = "A1-shop-a-token-0123456789abcdefghijkl", "B2-shop-b-token-0123456789abcdefghijkl"
    tokens = f"a:merchant:{token_a}:{shop_a},b:merchant:{token_b}:{shop_b}"
    app = create_console_app(load_settings(fresh.env), load_console_settings({"CROSSFILL_CONSOLE_TOKENS": tokens}))
    console = app.test_client()
    with SimClient(fresh.sim.base_url, fresh.sim.api_key, account=shop_b) as as_b:
        session_id = Shop(as_b).buy()
    try:
        # When shop A asks to fulfil B's session, as itself and as B
        plain = console.post(f"/api/v1/orders/{session_id}/fulfill", headers={"Authorization": f"Bearer {token_a}"})
        widened = console.post(f"/api/v1/orders/{session_id}/fulfill", query_string={"account": shop_b},
                               headers={"Authorization": f"Bearer {token_a}"})

        # Then both are 404 and nothing was recorded or fulfilled
        assert (plain.status_code, widened.status_code) == (404, 404)
        assert fresh.order(session_id) is None

        # And shop B fulfils its own session (read as B, with no ?account=), which A still cannot read
        own = console.post(f"/api/v1/orders/{session_id}/fulfill", headers={"Authorization": f"Bearer {token_b}"})
        assert own.status_code in (200, 202), own.json
        order = fresh.wait_order(session_id, "fulfilled")
        assert order["account"] == shop_b
        audited = [fields for _, fields in fresh.redis.client().xrange("crossfill:audit")
                   if fields["target"] == session_id]
        assert [(e["who"], e["account"], e["result"][:8]) for e in audited] == [
            ("a", "", "refused:"), ("a", shop_b, "refused:"), ("b", shop_b, own.json["status"][:8])]
        assert console.get(f"/api/v1/orders/{session_id}",
                           headers={"Authorization": f"Bearer {token_a}"}).status_code == 404
        again = console.post(f"/api/v1/orders/{session_id}/fulfill", headers={"Authorization": f"Bearer {token_a}"})
        assert again.status_code == 404
    finally:
        app.extensions["crossfill_console"].service.runtime.close()
