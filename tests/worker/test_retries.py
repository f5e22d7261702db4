"""The one retry policy: permanent → dead letter now, transient → until the horizon, bugs → a few attempts."""
from __future__ import annotations

import fakeredis
import pytest

from fulfillment.errors import InvalidResponse, PermanentError, StoreUnavailable, TransientError
from fulfillment.settings import RetrySettings
from fulfillment.waiting_retries import WaitingRetries, WaitingRetry
from tests.support.fulfillment_fixtures import fake_redis
from worker.retries import Attempt, should_retry

HOUR = 3600.0
POLICY = RetrySettings(horizon=72 * HOUR, max_attempts=8)
START = 1_700_000_000.0


def attempt(number: int) -> Attempt:
    return Attempt("fulfill_item", ["cs_1", "li_1"], number, START)


@pytest.mark.parametrize("error", [TransientError("GET answered 503", status=503),
                                   TransientError("rate limited", status=429, retry_after=2.0),
                                   StoreUnavailable("Redis is unreachable: ConnectionError")])
def test_transient_failures_retry_until_the_horizon_whatever_the_attempt_count(error: Exception) -> None:
    assert should_retry(error, attempt(500), POLICY, now=START + 71 * HOUR)
    assert not should_retry(error, attempt(2), POLICY, now=START + 72 * HOUR)


@pytest.mark.parametrize("error", [PermanentError("answered 400", status=400), InvalidResponse("no id")])
def test_permanent_failures_are_never_retried(error: Exception) -> None:
    assert not should_retry(error, attempt(1), POLICY, now=START)


def test_an_unexpected_error_is_a_bug_and_gets_a_few_attempts_not_the_horizon() -> None:
    assert should_retry(KeyError("price"), attempt(7), POLICY, now=START + 1)
    assert not should_retry(KeyError("price"), attempt(8), POLICY, now=START + 1)


def test_store_unavailable_is_a_transient_error() -> None:
    assert issubclass(StoreUnavailable, TransientError)


def test_the_attempt_is_filed_under_its_dead_letter_id() -> None:
    assert attempt(1).id == "fulfill:cs_1:li_1"
    assert Attempt("process_event", ["evt_1"], 1, START).id == "event:evt_1"


def test_waiting_retries_are_summed_by_task_and_reason() -> None:
    retries = WaitingRetries(fake_redis(fakeredis.FakeServer()))
    for sid, error in (("cs_1", "TransientError: 503"), ("cs_2", "TransientError: 429"),
                       ("cs_3", "StoreUnavailable: down")):
        retries.note(WaitingRetry(id=f"fulfill:{sid}:li_1", task="fulfill_item", args=[sid, "li_1"], error=error,
                                  attempts=3, first_attempt_at=START, next_attempt_at=START + 60))
    retries.note(WaitingRetry(id="event:evt_1", task="process_event", args=["evt_1"], error="TransientError: 500",
                              attempts=1, first_attempt_at=START, next_attempt_at=START + 5))
    retries.clear("fulfill:cs_1:li_1")

    summary = retries.summary(now=START, stale_after_s=600)

    assert summary == {"waiting": 3, "by_task": {"process_event": 1, "fulfill_item": 2},
                       "by_reason": {"TransientError": 2, "StoreUnavailable": 1}}
    assert retries.summary(now=START + 3600, stale_after_s=600)["waiting"] == 0  # long overdue: stale
