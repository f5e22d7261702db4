"""The real receiver and worker processes on Stripe's own objects: events signed and posted to
``crossfill web``, sessions and line items served by a Stripe double (tests/contract/stripe_double.py)
from Stripe's published fixtures, a real redis-server and a real Celery worker in between.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from crossfill.embedded import free_port
from fulfillment.deadletters import DeadLetters
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.signing import sign
from fulfillment.stats import LIVEMODE_MISMATCH, STRIPE_API_CALLS, STRIPE_ORDERS_READ, Stats
from messaging.contract import EVENTS_QUEUE, PROCESS_EVENT, task_message
from tests.contract.stripe_double import LINE_ITEMS_ENDPOINT, SESSION_ENDPOINT, StripeDouble
from tests.contract.variants import MUG, TSHIRT, mug_item, no_price_item, paid_session, tshirt_item
from tests.fixtures.stripe import fixture
from tests.support.processes import Proc, RedisServer, crossfill, port_open, wait_until

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "whsec_contract_tests_0123456789abcdef"
API_KEY = "sk_test_crossfill_contract_0123456789"


@dataclass
class Stack:
    redis: RedisServer
    double: StripeDouble
    receiver_url: str
    procs: dict[str, Proc]
    metrics_url: str

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.redis.client())

    def post_completed(self, session_id: str, *, livemode: bool = False) -> requests.Response:
        """Stripe's event fixture as a checkout.session.completed of *session_id*, signed and posted."""
        event = fixture("event")
        event.update(id=f"evt_{uuid.uuid4().hex}", type="checkout.session.completed", pending_webhooks=1,
                     livemode=livemode,
                     api_version="2026-10-28.endive",
                     data={"object": self.double.sessions[session_id][0]})
        body = json.dumps(event).encode()
        header = sign(body, [WEBHOOK_SECRET], timestamp=int(time.time()))
        return requests.post(self.receiver_url, data=body, headers={"Stripe-Signature": header}, timeout=10)

    def wait_order(self, session_id: str, status: str) -> dict[str, Any]:
        try:
            wait_until(lambda: (self.ledger.order(session_id) or {}).get("status") == status, timeout=60,
                       what=f"order {session_id} to become {status}", interval=0.1)
        except AssertionError as error:
            logs = "\n".join(f"--- {name}\n{proc.output()}" for name, proc in self.procs.items())
            raise AssertionError(f"{error}; order: {self.ledger.order(session_id)}\n{logs}") from None
        order = self.ledger.order(session_id)
        assert order is not None
        return order.to_dict()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("contract")
    redis = RedisServer(tmp / "redis")
    double = StripeDouble()
    web_port, metrics_port = free_port(), free_port()
    catalog = tmp / "catalog.toml"
    catalog.write_text(f'[defaults]\nhandler = "log"\n\n[products.{TSHIRT}]\nname = "T-shirt"\n'
                       f'cross_sell = "{MUG}"\n\n[products.{MUG}]\nname = "Mug"\n')
    with double.serve() as server:
        # Each session read alone: this double serves retrieves and line items, not the list endpoint
        # (batched reads are held equal to these on Stripe's fixtures in tests/fulfillment/test_batching.py).
        env = {**os.environ, "CROSSFILL_BATCH_READS": "0", "CROSSFILL_REDIS_URL": redis.url,
               "CROSSFILL_DATA_DIR": str(tmp / "data"),
               "CROSSFILL_PORT": str(web_port), "CROSSFILL_METRICS_PORT": str(metrics_port),
               "CROSSFILL_CATALOG": str(catalog), "CROSSFILL_WEB_WORKERS": "1",
               "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_API_KEY": API_KEY, "STRIPE_API_BASE": server.url,
               "CROSSFILL_RETRY_BASE": "0.2", "CROSSFILL_RETRY_CAP": "1"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        procs = {"web": crossfill("web", ["web"], env, tmp),
                 "worker": crossfill("worker", ["worker", "--concurrency", "4"], env, tmp)}
        try:
            wait_until(lambda: port_open(web_port), timeout=30, what="the receiver")
            yield Stack(redis=redis, double=double, receiver_url=f"http://127.0.0.1:{web_port}/webhooks/stripe",
                        procs=procs, metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")
        finally:
            for proc in procs.values():
                proc.stop()
            redis.stop()


def test_an_order_of_stripes_objects_is_fulfilled_by_the_real_worker(stack: Stack) -> None:
    # Given Stripe's session (paid) with Stripe's line item (metadata null) and a cross-sell from its fixtures
    session = paid_session(f"cs_test_{uuid.uuid4().hex}")
    stack.double.put(session, [tshirt_item(), mug_item()])

    # When its completed event is delivered
    assert stack.post_completed(session["id"]).status_code == 200

    # Then the worker reads it, and both items are fulfilled, the mug as the cross-sell
    order = stack.wait_order(session["id"], "fulfilled")
    assert [(item["product"], item["cross_sell"], item["status"]) for item in order["items"]] == [
        (TSHIRT, False, "done"), (MUG, True, "done")]


def test_an_item_without_a_price_is_dead_lettered_alone(stack: Stack) -> None:
    # Given a paid order whose middle item has every nullable field null (no price)
    session = paid_session(f"cs_test_{uuid.uuid4().hex}")
    stack.double.put(session, [tshirt_item(), no_price_item(), mug_item()])

    assert stack.post_completed(session["id"]).status_code == 200

    # Then the others are fulfilled and that item alone failed, dead-lettered with the reason
    order = stack.wait_order(session["id"], "partially_failed")
    assert [(item["id"], item["status"]) for item in order["items"]] == [
        ("li_1Pgc73B7WZ01zgkWx8kcmZPK", "done"), ("li_NoPrice", "failed"), ("li_Mug", "done")]
    letters = [letter for letter in DeadLetters(stack.redis.client()).list() if session["id"] in letter.args]
    assert [(letter.task, letter.args[-1], letter.reason) for letter in letters] == [
        ("fulfill_item", "li_NoPrice", "permanent")]
    assert "the line item has no price" in letters[0].error


def test_api_calls_per_order_as_metrics_show_them(stack: Stack) -> None:
    # Given 20 paid orders of 3 items and 2 of 25 items (more than a session embeds)
    stats = Stats(stack.redis.client())
    calls_before, reads_before = stats.read(STRIPE_API_CALLS), stats.total(STRIPE_ORDERS_READ)
    sent_before = dict(stack.double.calls)
    sessions = []
    for count in [3] * 20 + [25] * 2:
        session = paid_session(f"cs_test_{uuid.uuid4().hex}")
        stack.double.put(session, [tshirt_item(f"li_{uuid.uuid4().hex[:12]}") for _ in range(count)])
        sessions.append(session["id"])

    # When their completed events are delivered
    for session_id in sessions:
        assert stack.post_completed(session_id).status_code == 200
    for session_id in sessions:
        stack.wait_order(session_id, "fulfilled")

    # Then each order cost one request, two for the large ones, as Stripe saw and as /metrics counts
    sent = {endpoint: count - sent_before.get(endpoint, 0) for endpoint, count in stack.double.calls.items()}
    counted = {endpoint: count - calls_before.get(endpoint, 0) for endpoint, count in
               stats.read(STRIPE_API_CALLS).items()}
    assert sent == counted == {SESSION_ENDPOINT: 22, LINE_ITEMS_ENDPOINT: 2}
    assert stats.total(STRIPE_ORDERS_READ) - reads_before == 22
    metrics = requests.get(stack.metrics_url, timeout=10).text  # inside: the receiver's port answers 404
    assert 'crossfill_stripe_api_calls_total{endpoint="GET /v1/checkout/sessions/{id}"}' in metrics
    print(f"\nAPI calls per order: {sum(sent.values()) / len(sessions):.3f} ({sent})")


def test_a_live_event_is_ignored_by_a_test_mode_receiver_and_worker(stack: Stack) -> None:
    # Given crossfill running with a test key, and a live-mode event for a session Stripe's double serves
    stats = Stats(stack.redis.client())
    before = stats.read(LIVEMODE_MISMATCH)
    delivered, injected = (paid_session(f"cs_test_{uuid.uuid4().hex}") for _ in range(2))
    for session in (delivered, injected):
        stack.double.put(session, [tshirt_item()])

    # When one is delivered to the receiver, and one reaches the queue without it (an event recorded
    # by a receiver configured without a mode: the worker's own gate)
    response = stack.post_completed(delivered["id"], livemode=True)
    event_id = f"evt_{uuid.uuid4().hex}"
    body = json.dumps(fixture("event") | {"id": event_id, "type": "checkout.session.completed",
                                          "livemode": True, "data": {"object": injected}})
    Inbox(stack.redis.client()).record(event_id, "checkout.session.completed", injected["id"], body,
                                       queue=EVENTS_QUEUE, message=task_message(PROCESS_EVENT, [event_id]))

    # Then both are acknowledged/recorded as ignored for their mode, counted where they were stopped,
    # and neither is read from Stripe, fulfilled nor dead-lettered
    assert response.status_code == 200 and response.json()["reason"] == "livemode_mismatch"
    inbox = Inbox(stack.redis.client())
    wait_until(lambda: getattr(inbox.get(event_id), "status", None) == "ignored", timeout=30,
               what="the worker to ignore the live event")
    assert getattr(inbox.get(event_id), "reason", None) == "livemode_mismatch"
    after = stats.read(LIVEMODE_MISMATCH)
    assert (after.get("receiver", 0) - before.get("receiver", 0), after.get("worker", 0) - before.get("worker", 0)) \
        == (1, 1)
    assert stack.ledger.order(delivered["id"]) is None and stack.ledger.order(injected["id"]) is None
    assert (stack.double.reads[delivered["id"]], stack.double.reads[injected["id"]]) == (0, 0)
    letters = DeadLetters(stack.redis.client()).list()
    assert not [letter for letter in letters if event_id in letter.args]
