"""Writes crossfill answers for wait for a replica (WAIT): an acknowledged event, a done mark.

On a real redis-server with no replica, a delivery is recorded on the master but answered 503 (the
sender retries), and an item's done mark raises NotReplicated (the task retries); the claim of an item
whose mark is not yet on a replica does not hand the result out. With a replica attached, the same
calls succeed. Through Sentinel, a client finds the master by asking the sentinels.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from fulfillment.errors import NotReplicated
from fulfillment.inbox import Inbox
from fulfillment.ledger import DONE, Ledger
from fulfillment.records import Order, OrderItem
from fulfillment.settings import Settings
from fulfillment.store import Replication, connect
from tests.support.processes import wait_until
from tests.support.receiver import SignedPost, StoppableRedis
from tests.support.sentinel import DataNode, SentinelCluster, online_replicas

pytestmark = pytest.mark.integration

ONE_REPLICA = Replication(replicas=1, timeout_ms=50)


def wanting_a_replica(settings: Settings) -> Settings:
    return dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, min_replicas=1,
                                                                   wait_timeout_ms=50))


def test_a_delivery_no_replica_holds_is_answered_503_and_retried(
        settings: Settings, make_app: Callable[[Settings], Flask], make_event: Callable[..., dict[str, object]],
        sign_header: Callable[..., str], redis_client: redis.Redis) -> None:
    # Given a receiver that needs one replica to hold a delivery, on a Redis that has none
    client = make_app(wanting_a_replica(settings)).test_client()
    event = make_event()
    body = json.dumps(event).encode()

    def post() -> tuple[int, dict[str, str]]:
        answer = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign_header(body)})
        return answer.status_code, dict(answer.headers)

    # When the event is delivered, and delivered again
    first, second = post(), post()

    # Then both are refused with 503 and Retry-After, so the sender keeps retrying
    assert first[0] == second[0] == 503
    assert "Retry-After" in first[1]
    # And the master holds it, once: a retry that reaches a replica is answered as a duplicate
    assert redis_client.hget(f"crossfill:event:{event['id']}", "deliveries") == "2"


def test_the_same_receiver_without_a_replica_requirement_answers_200(settings: Settings,
                                                                       signed_post: SignedPost) -> None:
    assert settings.redis.min_replicas == 0
    assert signed_post().status_code == 200


def test_a_done_mark_no_replica_holds_is_not_done_yet(redis_server: StoppableRedis) -> None:
    # Given a ledger that needs one replica to hold an item's end, on a Redis that has none
    ledger = Ledger(connect(redis_server.url), replication=ONE_REPLICA)
    ledger.open_order("cs_test_r", Order(session_id="cs_test_r", payment_status="paid"), [OrderItem(id="li_1")])
    claim = ledger.claim_item("cs_test_r", "li_1", lease_s=30)

    # When the handler succeeded and the result is recorded
    with pytest.raises(NotReplicated):
        ledger.record_result("cs_test_r", "li_1", claim.token, {"ok": True})

    # Then the master has the mark, but a new run's claim does not hand it out as done
    assert (ledger.item("cs_test_r", "li_1") or {})["status"] == "done"
    with pytest.raises(NotReplicated):
        ledger.claim_item("cs_test_r", "li_1", lease_s=30)


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataNode]:
    """A redis-server with one replica attached; yields the master."""
    directory = tmp_path_factory.mktemp("replicated")
    master = DataNode("master", directory / "master")
    master.start()
    replica = DataNode("replica", directory / "replica", replica_of=master.port)
    replica.start()
    try:
        wait_until(lambda: online_replicas(master) == 1, timeout=15, what="the replica to attach")
        yield master
    finally:
        replica.stop()
        master.stop()


def test_with_a_replica_events_and_done_marks_count(replicated: DataNode) -> None:
    client = connect(f"redis://127.0.0.1:{replicated.port}/0")
    inbox = Inbox(client, replication=ONE_REPLICA)
    ledger = Ledger(client, replication=ONE_REPLICA)

    assert inbox.record("evt_rep_1", "checkout.session.completed", "cs_test_rep", "{}", queue="events",
                        message="m")[0] == "enqueued"
    ledger.open_order("cs_test_rep", Order(session_id="cs_test_rep", payment_status="paid"), [OrderItem(id="li_1")])
    claim = ledger.claim_item("cs_test_rep", "li_1", lease_s=30)
    assert ledger.record_result("cs_test_rep", "li_1", claim.token, {"ok": True})
    again = ledger.claim_item("cs_test_rep", "li_1", lease_s=30)
    assert (again.outcome, again.result) == (DONE, {"ok": True})


def test_a_sentinel_url_reaches_the_master_the_sentinels_name(tmp_path: Path) -> None:
    cluster = SentinelCluster(tmp_path).start()
    try:
        client = connect(cluster.url)
        client.set("crossfill:probe", "1")
        assert cluster.master().client().get("crossfill:probe") == "1"
        assert Inbox(client, replication=ONE_REPLICA).record(
            "evt_sentinel_1", "checkout.session.completed", "cs_test_s", "{}", queue="events", message="m")
    finally:
        cluster.stop()
