"""The event inbox on fakeredis (with its Lua support): claim, dedupe, leases, statuses and counts."""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import fakeredis
import pytest
import redis

from fulfillment.errors import StoreUnavailable
from fulfillment.inbox import CLAIMED, DUPLICATE, IN_FLIGHT, STATUSES, Inbox
from fulfillment.store import connect

LEASE_S = 30
TTL_S = 3600
T0 = 1_700_000_000.0
BODY = '{"id":"evt_1","object":"event"}'


@pytest.fixture
def fake() -> Iterator[redis.Redis]:
    # fakeredis runs Inbox's Lua scripts through lupa (the fakeredis[lua] extra).
    client = fakeredis.FakeRedis(decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def inbox(fake: redis.Redis) -> Inbox:
    return Inbox(fake, lease_s=LEASE_S, ttl_s=TTL_S)


def claim(inbox: Inbox, event_id: str = "evt_1", *, now: float = T0) -> tuple[str, str]:
    return inbox.claim(event_id, "checkout.session.completed", "cs_1", BODY, now=now)


def status_of(inbox: Inbox, event_id: str = "evt_1") -> str:
    event = inbox.get(event_id)
    assert event is not None
    return event.status


def test_first_delivery_claims_and_records_everything(inbox: Inbox, fake: redis.Redis) -> None:
    outcome, token = claim(inbox)

    assert outcome == CLAIMED and len(token) == 32
    event = inbox.get("evt_1")
    assert event is not None
    assert (event.id, event.type, event.session_id, event.status, event.body, event.received_at,
            event.deliveries) == ("evt_1", "checkout.session.completed", "cs_1", "receiving", BODY, T0, 1)
    assert 0 < fake.ttl("crossfill:event:evt_1") <= TTL_S


def test_get_of_an_unknown_event_is_none(inbox: Inbox) -> None:
    assert inbox.get("evt_never") is None


def test_a_concurrent_delivery_within_the_lease_is_in_flight(inbox: Inbox) -> None:
    claim(inbox)

    assert claim(inbox, now=T0 + LEASE_S - 1) == (IN_FLIGHT, "receiving")
    event = inbox.get("evt_1")
    assert event is not None and event.deliveries == 2 and event.status == "receiving"


@pytest.mark.parametrize("status", ["enqueued", "processing", "processed"])
def test_a_redelivery_after_enqueue_is_a_duplicate(inbox: Inbox, status: str) -> None:
    # Given an event that was enqueued (and maybe picked up by a worker)
    _, token = claim(inbox)
    assert inbox.mark_enqueued("evt_1", token)
    if status != "enqueued":
        inbox.move("evt_1", status)

    # When Stripe delivers it again, much later
    outcome = claim(inbox, now=T0 + 10 * LEASE_S)

    # Then it is a duplicate, and nothing about it changed except the delivery count
    assert outcome == (DUPLICATE, status)
    event = inbox.get("evt_1")
    assert event is not None and event.status == status and event.deliveries == 2


def test_an_expired_lease_is_retaken_and_the_old_claim_loses_its_token(inbox: Inbox) -> None:
    # Given a delivery that claimed the event and died before enqueueing it
    _, stale_token = claim(inbox)

    # When a redelivery comes once the lease has passed
    outcome, token = claim(inbox, now=T0 + LEASE_S)

    # Then it claims the event anew, and the dead delivery can no longer move it
    assert outcome == CLAIMED and token != stale_token
    assert not inbox.mark_enqueued("evt_1", stale_token)
    assert not inbox.mark_enqueue_failed("evt_1", stale_token)
    assert inbox.mark_enqueued("evt_1", token)
    assert status_of(inbox) == "enqueued"


def test_an_event_whose_enqueue_failed_is_claimed_again(inbox: Inbox) -> None:
    # Given a delivery whose enqueue failed (the broker was down)
    _, token = claim(inbox)
    assert inbox.mark_enqueue_failed("evt_1", token)
    assert status_of(inbox) == "enqueue_failed"

    # When Stripe retries a second later (well within any lease)
    outcome, retry_token = claim(inbox, now=T0 + 1)

    # Then the retry claims it (dj-stripe #832 skipped these), keeping the first received_at
    assert outcome == CLAIMED
    event = inbox.get("evt_1")
    assert event is not None and event.status == "receiving" and event.received_at == T0 and event.deliveries == 2
    assert inbox.counts()["enqueue_failed"] == 0 and inbox.counts()["receiving"] == 1
    assert inbox.mark_enqueued("evt_1", retry_token)


def test_marks_need_the_claims_token(inbox: Inbox) -> None:
    claim(inbox)

    assert not inbox.mark_enqueued("evt_1", "0" * 32)
    assert not inbox.mark_enqueue_failed("evt_1", "0" * 32)
    assert status_of(inbox) == "receiving"


def test_marks_of_an_unknown_event_do_nothing(inbox: Inbox) -> None:
    assert not inbox.mark_enqueued("evt_never", "0" * 32)
    assert inbox.get("evt_never") is None


def test_mark_enqueued_does_not_undo_a_worker_that_was_faster(inbox: Inbox) -> None:
    # Given a worker that already processed the event before the receiver marked it enqueued
    _, token = claim(inbox)
    inbox.move("evt_1", "processed")

    # When the receiver's mark arrives
    marked = inbox.mark_enqueued("evt_1", token)

    # Then the event stays processed
    assert not marked
    assert status_of(inbox) == "processed"


def test_record_ignored(inbox: Inbox) -> None:
    inbox.record_ignored("evt_2", "invoice.paid")
    inbox.record_ignored("evt_2", "invoice.paid")

    event = inbox.get("evt_2")
    assert event is not None
    assert (event.status, event.type, event.session_id, event.deliveries) == ("ignored", "invoice.paid", "", 2)
    assert inbox.counts()["ignored"] == 1


def test_move_with_a_guard(inbox: Inbox) -> None:
    _, token = claim(inbox)
    inbox.mark_enqueued("evt_1", token)

    assert inbox.move("evt_1", "processed", allowed_from=["processing"]) is None
    assert status_of(inbox) == "enqueued"
    assert inbox.move("evt_1", "processing", allowed_from=["enqueued", "receiving"]) == "enqueued"
    assert status_of(inbox) == "processing"
    assert inbox.move("evt_never", "processing") is None


def test_move_to_an_unknown_status_is_a_programming_error(inbox: Inbox) -> None:
    claim(inbox)

    with pytest.raises(ValueError, match="status must be one of"):
        inbox.move("evt_1", "done")


def test_counts_follow_every_transition(inbox: Inbox) -> None:
    # Given events in every state
    for number in range(1, 6):
        claim(inbox, f"evt_{number}")
    _, token = claim(inbox, "evt_6")
    inbox.mark_enqueue_failed("evt_6", token)
    inbox.record_ignored("evt_7", "customer.created")
    inbox.move("evt_1", "enqueued")
    inbox.move("evt_2", "processing")
    inbox.move("evt_3", "processed")
    inbox.move("evt_4", "enqueued")
    inbox.move("evt_4", "processed")

    # When they are counted
    counts = inbox.counts()

    # Then each event is counted once, in its current status
    assert counts == dict.fromkeys(STATUSES, 0) | {"receiving": 1, "enqueued": 1, "enqueue_failed": 1,
                                                    "processing": 1, "processed": 2, "ignored": 1}
    assert tuple(counts) == STATUSES


def test_an_empty_inbox_counts_zero_everywhere(inbox: Inbox) -> None:
    assert inbox.counts() == dict.fromkeys(STATUSES, 0)


def test_every_key_is_prefixed(inbox: Inbox, fake: redis.Redis) -> None:
    claim(inbox)
    inbox.record_ignored("evt_2", "x")

    assert all(str(key).startswith("crossfill:") for key in fake.keys("*"))


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
    lambda inbox: inbox.claim("evt_1", "checkout.session.completed", "cs_1", BODY),
    lambda inbox: inbox.mark_enqueued("evt_1", "t"),
    lambda inbox: inbox.mark_enqueue_failed("evt_1", "t"),
    lambda inbox: inbox.record_ignored("evt_1", "invoice.paid"),
    lambda inbox: inbox.move("evt_1", "processed"),
    lambda inbox: inbox.get("evt_1"),
    lambda inbox: inbox.counts(),
], ids=["claim", "mark_enqueued", "mark_enqueue_failed", "record_ignored", "move", "get", "counts"])
def test_unreachable_redis_is_store_unavailable(unreachable: Inbox, call: Callable[[Inbox], object]) -> None:
    with pytest.raises(StoreUnavailable, match="Redis is unreachable"):
        call(unreachable)
