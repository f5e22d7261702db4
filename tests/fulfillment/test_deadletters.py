"""The dead-letter queue on fakeredis: one entry per failed task, oldest failure first."""
from __future__ import annotations

from collections.abc import Callable

import fakeredis
import pytest
import redis

from fulfillment import deadletters
from fulfillment.deadletters import DeadLetter, DeadLetters
from fulfillment.errors import StoreUnavailable
from messaging.contract import dead_letter_id
from tests.support.fulfillment_fixtures import fake_redis


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(deadletters, "time", clock)
    return clock


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def queue(server: fakeredis.FakeServer) -> DeadLetters:
    return DeadLetters(fake_redis(server))


def test_entry_ids_name_what_failed() -> None:
    assert dead_letter_id("fulfill_item", ["cs_1", "li_1"]) == "fulfill:cs_1:li_1"
    assert dead_letter_id("process_event", ["evt_1"]) == "event:evt_1"


def test_add_records_the_task_its_error_and_times(queue: DeadLetters, clock: Clock) -> None:
    letter = queue.add("fulfill:cs_1:li_1", "fulfill_item", ["cs_1", "li_1"], "POST answered 400", reason="permanent", attempts=1)

    assert letter == DeadLetter(id="fulfill:cs_1:li_1", task="fulfill_item", args=["cs_1", "li_1"],
                                error="POST answered 400", reason="permanent", attempts=1,
                                first_failed_at=clock.now, failed_at=clock.now)
    assert queue.get("fulfill:cs_1:li_1") == letter
    assert queue.count() == 1


def test_adding_the_same_task_again_keeps_one_entry_and_its_first_failure(queue: DeadLetters, clock: Clock) -> None:
    # Given a task dead-lettered once
    first = queue.add("fulfill:cs_1:li_1", "fulfill_item", ["cs_1", "li_1"], "timeout", reason="exhausted", attempts=8)

    # When it is replayed, fails again, and is dead-lettered again later
    clock.now += 60
    again = queue.add("fulfill:cs_1:li_1", "fulfill_item", ["cs_1", "li_1"], "503", reason="exhausted", attempts=16)

    # Then there is still one entry, with the first failure's time and the latest error and attempts
    assert queue.count() == 1
    assert again.first_failed_at == first.first_failed_at
    assert (again.failed_at, again.error, again.attempts) == (first.failed_at + 60, "503", 16)
    assert queue.get(again.id) == again


def test_list_is_ordered_by_latest_failure(queue: DeadLetters, clock: Clock) -> None:
    queue.add("fulfill:cs_1:li_1", "fulfill_item", ["cs_1", "li_1"], "a", reason="permanent", attempts=1)
    clock.now += 1
    queue.add("event:evt_1", "process_event", ["evt_1"], "b", reason="permanent", attempts=1)
    clock.now += 1
    queue.add("fulfill:cs_0:li_9", "fulfill_item", ["cs_0", "li_9"], "c", reason="permanent", attempts=1)
    clock.now += 1
    queue.add("fulfill:cs_1:li_1", "fulfill_item", ["cs_1", "li_1"], "a again", reason="exhausted", attempts=8)

    assert [letter.id for letter in queue.list()] == ["event:evt_1", "fulfill:cs_0:li_9", "fulfill:cs_1:li_1"]
    assert [letter.id for letter in queue.list(limit=2)] == ["event:evt_1", "fulfill:cs_0:li_9"]


def test_remove_drops_the_entry_once(queue: DeadLetters, clock: Clock) -> None:
    queue.add("event:evt_1", "process_event", ["evt_1"], "bad", reason="permanent", attempts=1)
    queue.add("event:evt_2", "process_event", ["evt_2"], "bad", reason="permanent", attempts=1)

    assert queue.remove("event:evt_1") is True
    assert queue.remove("event:evt_1") is False
    assert queue.get("event:evt_1") is None
    assert [letter.id for letter in queue.list()] == ["event:evt_2"]
    assert queue.count() == 1


def test_an_empty_queue(queue: DeadLetters) -> None:
    assert (queue.list(), queue.count(), queue.get("event:nope")) == ([], 0, None)


def test_a_long_error_is_cut(queue: DeadLetters, clock: Clock) -> None:
    letter = queue.add("event:evt_1", "process_event", ["evt_1"], "x" * 10_000, reason="permanent", attempts=1)

    assert len(letter.error) == 2000
    assert queue.get(letter.id) == letter



@pytest.mark.parametrize("call", [
    lambda queue: queue.add("event:evt_1", "process_event", ["evt_1"], "bad", reason="permanent", attempts=1),
    lambda queue: queue.get("event:evt_1"),
    lambda queue: queue.list(),
    lambda queue: queue.remove("event:evt_1"),
    lambda queue: queue.count(),
], ids=["add", "get", "list", "remove", "count"])
def test_redis_down_is_store_unavailable(call: Callable[[DeadLetters], object], server: fakeredis.FakeServer,
                                         queue: DeadLetters) -> None:
    server.connected = False

    with pytest.raises(StoreUnavailable, match="Redis is unreachable") as caught:
        call(queue)

    assert isinstance(caught.value.__cause__, redis.ConnectionError)
