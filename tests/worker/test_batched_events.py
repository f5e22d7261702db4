"""process_event with events waiting: one task decides them from pages of the list endpoint.

The task runs in this process on fakeredis, against the simulator over real HTTP; Celery's task
object is a stand-in that records retries (Celery itself is not what is tested here).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from fulfillment.events import COMPLETED
from fulfillment.inbox import Inbox
from fulfillment.settings import Settings, StripeSettings
from fulfillment.stats import STRIPE_API_CALLS, Stats
from ops.runtime import Runtime
from simulator import SimConfig, SimServer
from simulator.store import LineItemSpec
from tests.support.fulfillment_fixtures import fake_redis
from worker.tasks import process_event

API_KEY = "sk_test_batched_events"


class Retried(Exception):
    """What the stand-in task raises for ``task.retry``."""

    def __init__(self, countdown: float) -> None:
        self.countdown = countdown
        super().__init__(f"retry in {countdown}")


def task_for(runtime: Runtime) -> Any:
    def retry(countdown: float = 0, **_: Any) -> Retried:
        return Retried(countdown)

    return SimpleNamespace(app=SimpleNamespace(runtime=runtime), request=SimpleNamespace(retries=0), retry=retry)


@pytest.fixture
def sim() -> Iterator[Any]:
    """The simulator over real HTTP (``url``, ``simulator``) and the ``price`` every session sells."""
    with SimServer(SimConfig()) as server:
        store = server.simulator.store
        store.create_product(name="Mug", product_id="prod_mug")
        price = store.create_price(product="prod_mug", currency="usd", unit_amount=900)["id"]
        yield SimpleNamespace(url=server.url, simulator=server.simulator, price=price)


@pytest.fixture
def runtime(sim: Any) -> Runtime:
    made = Runtime(Settings(redis_url="redis://unused", stripe=StripeSettings(api_key=API_KEY, api_base=sim.url,
                                                                              rate_limit=0, endpoint_rate_limit=0)))
    made.__dict__["redis"] = fake_redis()
    return made


def paid(sim: Any, runtime: Runtime, count: int, *, items: int = 1) -> list[tuple[str, str]]:
    """*count* paid sessions, each with its completed event recorded in the inbox; (event id, session id)."""
    store, made = sim.simulator.store, []
    for n in range(count):
        session = store.create_session(mode="payment", base_url=sim.url,
                                       line_items=[LineItemSpec(sim.price, 1)] * items)
        store.complete_session(session["id"], "paid")
        event = store.events[-1]
        runtime.inbox.record(event["id"], COMPLETED, session["id"], json.dumps(event), queue="events", message="m",
                             now=1000.0 + n)
        made.append((event["id"], session["id"]))
    return made


def test_one_task_decides_every_waiting_event_from_one_page(sim: Any, runtime: Runtime) -> None:
    # Given 30 paid orders waiting, one of them of 12 items
    events = paid(sim, runtime, 29) + paid(sim, runtime, 1, items=12)

    # When a worker takes the first event
    result = process_event(task_for(runtime), events[0][0])

    # Then every order is open with all its items, from one list read (and one read of the 12-item rest)
    assert result["outcome"] == "processed" and result["batched"] == 29
    for event_id, session_id in events:
        assert runtime.inbox.get(event_id).status == "processed"
        assert runtime.ledger.order(session_id)["status"] == "fulfilling"
    assert len(runtime.ledger.order(events[-1][1])["items"]) == 12
    calls = Stats(runtime.redis).read(STRIPE_API_CALLS)
    assert calls.get("GET /v1/checkout/sessions") == 1 and "GET /v1/checkout/sessions/{id}" not in calls
    assert calls.get("GET /v1/checkout/sessions/{id}/line_items") == 1

    # And the other events' own messages find them processed, and do nothing
    assert process_event(task_for(runtime), events[5][0]) == {"event_id": events[5][0], "outcome": "processed",
                                                               "batched": True}
    assert Stats(runtime.redis).read(STRIPE_API_CALLS).get("GET /v1/checkout/sessions") == 1


def test_a_lone_event_is_retrieved_alone(sim: Any, runtime: Runtime) -> None:
    [(event_id, session_id)] = paid(sim, runtime, 1)

    process_event(task_for(runtime), event_id)

    assert Stats(runtime.redis).read(STRIPE_API_CALLS) == {"GET /v1/checkout/sessions/{id}": 1}
    assert runtime.ledger.order(session_id)["status"] == "fulfilling"


def test_a_message_of_an_event_a_live_batch_holds_comes_back_later(sim: Any, runtime: Runtime) -> None:
    events = paid(sim, runtime, 2)
    inbox: Inbox = runtime.inbox
    inbox.take(events[0][0], batch=5, types=(COMPLETED,))  # a batch elsewhere takes one and holds the other

    with pytest.raises(Retried) as retried:
        process_event(task_for(runtime), events[1][0])

    assert 0 < retried.value.countdown <= 5.2
    assert runtime.ledger.order(events[1][1]) is None


def test_claimed_events_no_page_holds_go_back_to_their_own_messages(sim: Any, runtime: Runtime) -> None:
    # Given two waiting events, one of whose sessions was created outside any window a page covers
    (first, _), (second, second_session) = paid(sim, runtime, 2)
    body = json.loads(runtime.inbox.get(second).body)
    sim.simulator.store.sessions[second_session].created = body["data"]["object"]["created"] + 10_000

    process_event(task_for(runtime), first)

    # Then the one its page did not hold is enqueued again, unheld, for its own message to read alone
    assert runtime.inbox.get(first).status == "processed"
    again = runtime.inbox.get(second)
    assert again.status == "enqueued" and not again.batch_until and again.read_alone
    assert runtime.inbox.take(first, batch=5, types=(COMPLETED,))[1] == []  # no batch claims it again
    _, taken = runtime.inbox.take(second, batch=5, types=(COMPLETED,))
    assert taken == []  # nor does it claim others: its read is alone

    # And its own message reads it alone
    paid(sim, runtime, 1)  # something waits: it still does not batch
    process_event(task_for(runtime), second)
    assert runtime.ledger.order(second_session)["status"] == "fulfilling"
