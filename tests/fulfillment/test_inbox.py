"""The event inbox on fakeredis (with its Lua support): atomic record + enqueue, dedupe, statuses, counts."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import fakeredis
import pytest
import redis

from fulfillment.errors import StoreUnavailable
from fulfillment.inbox import DUPLICATE, ENQUEUED, STATUSES, Inbox
from fulfillment.store import connect

TTL_S = 3600
T0 = float(int(time.time()))  #: recent: moves stamp wall-clock time and trim the index by it
BODY = '{"id":"evt_1","object":"event"}'
QUEUE = "events"


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def fake(server: fakeredis.FakeServer) -> Iterator[redis.Redis]:
    # fakeredis runs Inbox's Lua scripts through lupa (the fakeredis[lua] extra).
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def inbox(fake: redis.Redis) -> Inbox:
    return Inbox(fake, ttl_s=TTL_S)


def record(inbox: Inbox, event_id: str = "evt_1", *, now: float = T0) -> tuple[str, str]:
    return inbox.record(event_id, "checkout.session.completed", "cs_1", BODY, queue=QUEUE,
                        message=f"message for {event_id}", now=now)


def status_of(inbox: Inbox, event_id: str = "evt_1") -> str:
    event = inbox.get(event_id)
    assert event is not None
    return event.status


def test_a_new_event_is_recorded_and_its_message_pushed_together(inbox: Inbox, fake: redis.Redis) -> None:
    assert record(inbox) == (ENQUEUED, "enqueued")

    event = inbox.get("evt_1")
    assert event is not None
    assert (event.id, event.type, event.session_id, event.status, event.body, event.received_at,
            event.deliveries) == ("evt_1", "checkout.session.completed", "cs_1", "enqueued", BODY, T0, 1)
    assert fake.lrange(QUEUE, 0, -1) == ["message for evt_1"]
    assert 0 < fake.ttl("crossfill:event:evt_1") <= TTL_S


def test_a_connect_event_keeps_its_account(inbox: Inbox, fake: redis.Redis) -> None:
    inbox.record("evt_2", "checkout.session.completed", "cs_2", BODY, queue=QUEUE, message="m", account="acct_1Shop")
    event = inbox.get("evt_2")
    assert event is not None and event.account == "acct_1Shop"
    # An event of the platform's own account has none, and so has an entry written before accounts
    # were recorded (no such field in its hash).
    record(inbox)
    assert fake.hget("crossfill:event:evt_1", "account") is None
    assert (inbox.get("evt_1") or pytest.fail()).account is None


def test_get_of_an_unknown_event_is_none(inbox: Inbox) -> None:
    assert inbox.get("evt_never") is None


def test_a_redelivery_is_a_duplicate_in_whatever_status_and_pushes_nothing(inbox: Inbox, fake: redis.Redis) -> None:
    # Given an event recorded, then moved on by a worker
    record(inbox)
    for status in ("enqueued", "processing", "processed", "failed"):
        inbox.move("evt_1", status)

        # When it is delivered again
        outcome = record(inbox, now=T0 + 60)

        # Then it is a duplicate, in its current status, and no second message is queued
        assert outcome == (DUPLICATE, status)
    assert fake.llen(QUEUE) == 1
    event = inbox.get("evt_1")
    assert event is not None and event.deliveries == 5 and event.received_at == T0


def test_concurrent_deliveries_push_one_message(server: fakeredis.FakeServer) -> None:
    # Given 20 receivers, each with its own connection, delivering one event at the same moment
    start = threading.Barrier(20)
    outcomes: list[str] = []

    def deliver() -> None:
        client = fakeredis.FakeRedis(server=server, decode_responses=True)
        start.wait()
        outcomes.append(record(Inbox(client, ttl_s=TTL_S))[0])
        client.close()

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly one enqueued it
    assert sorted(outcomes) == [DUPLICATE] * 19 + [ENQUEUED]
    assert fakeredis.FakeRedis(server=server).llen(QUEUE) == 1


def test_record_ignored(inbox: Inbox, fake: redis.Redis) -> None:
    inbox.record_ignored("evt_2", "invoice.paid")
    inbox.record_ignored("evt_2", "invoice.paid")

    event = inbox.get("evt_2")
    assert event is not None
    assert (event.status, event.type, event.session_id, event.deliveries) == ("ignored", "invoice.paid", "", 2)
    assert inbox.counts()["ignored"] == 1
    assert fake.llen(QUEUE) == 0


def test_record_ignored_keeps_the_session_an_event_names(inbox: Inbox) -> None:
    inbox.record_ignored("evt_3", "checkout.session.completed", reason="livemode_mismatch", session_id="cs_test_3")

    event = inbox.get("evt_3")
    assert event is not None and (event.status, event.session_id) == ("ignored", "cs_test_3")


def test_move_with_a_guard(inbox: Inbox) -> None:
    record(inbox)

    assert inbox.move("evt_1", "processed", allowed_from=["processing"]) is None
    assert status_of(inbox) == "enqueued"
    assert inbox.move("evt_1", "processing", allowed_from=["enqueued"]) == "enqueued"
    assert status_of(inbox) == "processing"
    assert inbox.move("evt_never", "processing") is None


def test_move_to_an_unknown_status_is_a_programming_error(inbox: Inbox) -> None:
    record(inbox)

    with pytest.raises(ValueError, match="status must be one of"):
        inbox.move("evt_1", "done")


def test_counts_follow_every_transition(inbox: Inbox) -> None:
    # Given events in every state
    for number in range(1, 6):
        record(inbox, f"evt_{number}")
    inbox.record_ignored("evt_7", "customer.created")
    inbox.move("evt_2", "processing")
    inbox.move("evt_3", "processed")
    inbox.move("evt_4", "processing")
    inbox.move("evt_4", "processed")
    inbox.move("evt_5", "failed")

    # When they are counted
    counts = inbox.counts()

    # Then each event is counted once, in its current status
    assert counts == {"enqueued": 1, "processing": 1, "processed": 2, "failed": 1, "ignored": 1}
    assert tuple(counts) == STATUSES


def test_an_empty_inbox_counts_zero_everywhere(inbox: Inbox) -> None:
    assert inbox.counts() == dict.fromkeys(STATUSES, 0)


def test_every_key_of_the_inbox_is_prefixed(inbox: Inbox, fake: redis.Redis) -> None:
    record(inbox)
    inbox.record_ignored("evt_2", "x")

    assert sorted(key for key in fake.keys("*") if not str(key).startswith("crossfill:")) == [QUEUE]


# --- an unreachable Redis is StoreUnavailable, whatever the call ---------------------------------

@pytest.fixture
def unreachable() -> Iterator[Inbox]:
    with socket.socket() as probe:  # a port nothing listens on: connecting is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}/0")  # the production client, with its timeouts
    yield Inbox(client)
    client.close()


@pytest.mark.parametrize("call", [
    lambda inbox: inbox.record("evt_1", "checkout.session.completed", "cs_1", BODY, queue=QUEUE, message="m"),
    lambda inbox: inbox.record_ignored("evt_1", "invoice.paid"),
    lambda inbox: inbox.move("evt_1", "processed"),
    lambda inbox: inbox.get("evt_1"),
    lambda inbox: inbox.counts(),
], ids=["record", "record_ignored", "move", "get", "counts"])
def test_unreachable_redis_is_store_unavailable(unreachable: Inbox, call: Callable[[Inbox], object]) -> None:
    with pytest.raises(StoreUnavailable, match="Redis is unreachable"):
        call(unreachable)


def test_the_status_index_forgets_events_older_than_the_inbox_keeps(inbox: Inbox) -> None:
    # Given an event recorded more than the inbox's TTL ago (its hash has expired by now in real Redis)
    record(inbox, "evt_old", now=T0 - TTL_S - 1)

    # When a new event is recorded
    record(inbox, "evt_new")

    # Then the status index no longer counts the old one
    assert inbox.counts()["enqueued"] == 1
