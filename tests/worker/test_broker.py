"""worker/broker.py without a broker: which failures keep a task's message, and the exit status."""
from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import Celery
from celery.exceptions import Reject, Retry
from kombu.exceptions import OperationalError

from fulfillment.errors import StoreUnavailable, TransientError
from worker.broker import OutageTolerantTask


@pytest.fixture
def app() -> Celery:
    return Celery("broker-unit", set_as_current=False, task_cls=OutageTolerantTask)


def task_raising(app: Celery, error: BaseException) -> Any:
    @app.task(name=f"raises-{type(error).__name__}")
    def raises() -> None:
        raise error

    return raises


@pytest.mark.parametrize("error", [
    StoreUnavailable("Redis is unreachable: ConnectionError"),  # an inbox or ledger call lost its Redis
    redis.ConnectionError("Connection closed by server."),
    redis.TimeoutError("Timeout reading from socket"),
    OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),  # a retry not published
])
def test_a_task_that_lost_redis_requeues_its_message(app: Celery, error: Exception) -> None:
    with pytest.raises(Reject) as raised:
        task_raising(app, error)()
    assert raised.value.requeue is True
    assert raised.value.__cause__ is error


def test_a_retry_that_could_not_be_sent_requeues_the_message(app: Celery) -> None:
    @app.task(name="retries", bind=True)
    def retries(task: Any) -> None:
        try:  # what Task.retry() raises when publishing the retry fails
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        except OperationalError as error:
            raise Reject(error, requeue=False) from None

    with pytest.raises(Reject) as raised:
        retries()
    assert raised.value.requeue is True


@pytest.mark.parametrize("error", [Retry("again later"), TransientError("API 503"), ValueError("a bug"),
                                   Reject("not for us", requeue=False)])
def test_other_outcomes_are_celerys_as_before(app: Celery, error: Exception) -> None:
    with pytest.raises(type(error)):
        task_raising(app, error)()


def test_a_task_that_returns_is_untouched(app: Celery) -> None:
    @app.task(name="returns")
    def returns(value: int) -> int:
        return value + 1

    assert returns(41) == 42
