"""The one retry-or-dead-letter path of crossfill's tasks (Dramatiq's Retries middleware is the model).

Policy: a permanent error is dead-lettered at once. A transient one (API 5xx/429/timeouts, Redis
down) is retried with jittered backoff until the retry horizon has passed since the first attempt
(Stripe itself retries a webhook for 3 days). Anything else is a bug: it is logged with its
traceback and gets a small number of attempts. Retry delays stay below the visibility timeout.

The delay is ``fulfillment/backoff.py``'s; a task waiting on its retry is noted for ops in
``fulfillment/waiting_retries.py`` (``Runtime.waiting_retries``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from celery import Task

from fulfillment import backoff
from fulfillment.errors import PermanentError, StoreUnavailable, TransientError
from fulfillment.settings import RetrySettings
from fulfillment.waiting_retries import WaitingRetry
from messaging.contract import dead_letter_id
from ops.runtime import Runtime

log = logging.getLogger(__name__)

PERMANENT, EXHAUSTED = "permanent", "exhausted"  #: why a task was dead-lettered


@dataclass(frozen=True)
class Attempt:
    """One run of a task: which task, on what, which attempt, and when the first one started."""

    task: str
    args: list[str]
    number: int
    first_attempt_at: float

    @property
    def id(self) -> str:
        return dead_letter_id(self.task, self.args)


def describe(error: BaseException) -> str:
    """``"TransientError: GET /v1/... answered 503"``: what an operator reads in a dead letter."""
    return f"{type(error).__name__}: {error}"


def should_retry(error: BaseException, attempt: Attempt, policy: RetrySettings, *, now: float) -> bool:
    """Whether *attempt*, which failed with *error*, is tried again (see the module's policy)."""
    if isinstance(error, PermanentError):
        return False
    if isinstance(error, TransientError):
        return now - attempt.first_attempt_at < policy.horizon
    return attempt.number < policy.max_attempts


def retry_or_dead_letter(task: Task, runtime: Runtime, attempt: Attempt, error: Exception, *,
                         before_retry: Callable[[str], Any] | None = None,
                         on_dead: Callable[[str, str], Any] | None = None) -> dict[str, Any]:
    """Retry the running task later, or file it in the dead-letter queue; the one path both tasks take.

    *before_retry(message)* runs before a retry is scheduled (e.g. release the item's lease);
    *on_dead(message, reason)* when the task is dead-lettered (e.g. mark the inbox event failed).
    Returns the task's result when dead-lettered; raises Celery's Retry otherwise.
    """
    message = describe(error)
    if not isinstance(error, TransientError | PermanentError):
        log.error("unexpected error in %s %s", attempt.task, attempt.args, exc_info=error)
    now = time.time()
    if should_retry(error, attempt, runtime.settings.retry, now=now):
        if before_retry is not None:
            before_retry(message)
        _schedule_retry(task, runtime, attempt, error, message, now)
    reason = PERMANENT if isinstance(error, PermanentError) else EXHAUSTED
    runtime.dead_letters.add(attempt.id, attempt.task, attempt.args, message, reason=reason, attempts=attempt.number)
    if on_dead is not None:
        on_dead(message, reason)
    runtime.waiting_retries.clear(attempt.id)
    log.error("%s dead-lettered (%s) after %d attempt(s) over %.0f s: %s", attempt.id, reason, attempt.number,
              now - attempt.first_attempt_at, message)
    return {"outcome": "dead_lettered", "reason": reason, "error": message}


def _schedule_retry(task: Task, runtime: Runtime, attempt: Attempt, error: Exception, message: str,
                    now: float) -> NoReturn:
    delay = backoff.delay(runtime.settings.retry, attempt.number, getattr(error, "retry_after", None))
    try:
        runtime.waiting_retries.note(WaitingRetry(id=attempt.id, task=attempt.task, args=attempt.args,
                                                  error=message, attempts=attempt.number,
                                                  first_attempt_at=attempt.first_attempt_at,
                                                  next_attempt_at=now + delay))
    except StoreUnavailable:
        pass  # only ops' view of waiting retries misses it; the retry itself is Celery's to send
    log.warning("%s attempt %d failed (%s); retry in %.1f s", attempt.id, attempt.number, message, delay)
    # The first attempt's time travels with the task, so the horizon holds across retries.
    raise task.retry(countdown=delay, kwargs={"first_attempt_at": attempt.first_attempt_at}) from None
