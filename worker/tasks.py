"""Celery tasks: thin shells that parse ids, call the domain, and map errors to retries or dead letters."""
from __future__ import annotations

import logging
import traceback
from typing import Any

from celery import Task

from fulfillment.errors import PermanentError, StoreUnavailable, TransientError
from fulfillment.handlers import FulfillmentRequest
from fulfillment.ledger import BUSY, CLAIMED, DONE, FAILED
from fulfillment.pipeline import decide
from fulfillment.retrying import backoff_delay
from fulfillment.store import reachable
from worker.app import (
    FULFILL_ITEM,
    FULFILLMENT_QUEUE,
    PROCESS_EVENT,
    CrossfillCelery,
    Runtime,
    task_message,
)

log = logging.getLogger(__name__)

#: Retry delays stay this far below the visibility timeout, seconds.
VISIBILITY_MARGIN_S = 5


def fulfill_task_id(session_id: str, line_item_id: str) -> str:
    """The stable Celery task id of an item's fulfillment; a fulfillment system can read its result."""
    return f"fulfill:{session_id}:{line_item_id}"


def _runtime(task: Task) -> Runtime:
    return task.app.runtime


def _delay(runtime: Runtime, attempt: int, retry_after: float | None = None) -> float:
    settings = runtime.settings
    return backoff_delay(attempt, base=settings.retry_base, cap=settings.retry_cap, retry_after=retry_after,
                         ceiling=settings.visibility_timeout - VISIBILITY_MARGIN_S)


def process_event(task: Task, event_id: str) -> dict[str, Any]:
    """Turn one received event into an order and one fulfill_item task per line item still open."""
    runtime = _runtime(task)
    event = runtime.inbox.get(event_id)
    if event is None:
        log.warning("event %s is not in the inbox (expired or never received); nothing to do", event_id)
        return {"event_id": event_id, "outcome": "missing"}
    runtime.inbox.move(event_id, "processing")
    attempt = task.request.retries + 1
    try:
        decision = decide(event.type, event.session_id, runtime.stripe, runtime.ledger, runtime.catalog)
        _dispatch(task, runtime, event.session_id, decision.dispatch)
    except PermanentError as error:
        return _dead_event(runtime, event_id, error, "permanent", attempt)
    except Exception as error:  # noqa: BLE001 - transient, or a bug: retried, then dead-lettered
        if not isinstance(error, TransientError | StoreUnavailable):
            log.error("unexpected error processing %s\n%s", event_id, traceback.format_exc())
        if attempt < runtime.settings.max_attempts:
            delay = _delay(runtime, attempt, getattr(error, "retry_after", None))
            log.warning("event %s: %s; retry %d in %.1f s", event_id, error, attempt, delay)
            raise task.retry(countdown=delay, exc=error) from None
        return _dead_event(runtime, event_id, error, "exhausted", attempt)

    runtime.inbox.move(event_id, "processed")
    log.info("event %s (%s): order %s is %s, %d item(s) dispatched", event_id, event.type, event.session_id,
             decision.order_status, len(decision.dispatch))
    return {"event_id": event_id, "outcome": "processed", "order_status": decision.order_status,
            "dispatched": len(decision.dispatch)}


def _dispatch(task: Task, runtime: Runtime, session_id: str, line_item_ids: tuple[str, ...]) -> None:
    """Queue one fulfill_item per item in one LPUSH (a 120-item order is one round trip, not 120
    publishes through Celery's producer); the messages are Celery's own (task_message)."""
    if not line_item_ids:
        return
    messages = [task_message(task.app, FULFILL_ITEM, [session_id, line_item_id], queue=FULFILLMENT_QUEUE,
                             ignore_result=False, task_id=fulfill_task_id(session_id, line_item_id))
                for line_item_id in line_item_ids]
    with reachable():
        runtime.redis.lpush(FULFILLMENT_QUEUE, *messages)


def _dead_event(runtime: Runtime, event_id: str, error: Exception, reason: str, attempt: int) -> dict[str, Any]:
    runtime.dead_letters.add(PROCESS_EVENT, [event_id], f"{type(error).__name__}: {error}", reason=reason,
                             attempts=attempt)
    runtime.inbox.move(event_id, "failed")
    log.error("event %s dead-lettered (%s) after %d attempt(s): %s", event_id, reason, attempt, error)
    return {"event_id": event_id, "outcome": "dead_lettered", "reason": reason}


def fulfill_item(task: Task, session_id: str, line_item_id: str) -> dict[str, Any]:
    """Fulfill one line item at most once in effect: claim it in the ledger, call its handler, record."""
    runtime = _runtime(task)
    ledger = runtime.ledger
    claim = ledger.claim_item(session_id, line_item_id, lease_s=runtime.settings.item_lease)
    if claim.outcome == DONE:
        return {"status": "done", "result": claim.result, "duplicate": True}
    if claim.outcome == FAILED:
        return {"status": "failed", "error": claim.error}
    if claim.outcome == BUSY:
        # Another run holds the lease; come back when it ends or expires (not an attempt of ours).
        raise task.retry(countdown=min(claim.wait_s + 1, runtime.settings.item_lease))
    if claim.outcome != CLAIMED:
        letter = runtime.dead_letters.add(FULFILL_ITEM, [session_id, line_item_id], "the item is not in the ledger",
                                          reason="permanent", attempts=0)
        return {"status": "failed", "error": letter.error}

    item = ledger.item(session_id, line_item_id) or {}
    order = ledger.order_summary(session_id)
    request = FulfillmentRequest(session_id=session_id, line_item_id=line_item_id, item=item, order=order,
                                 attempt=claim.attempt, signing_secret=runtime.settings.handler_secret)
    try:
        config = runtime.catalog.product(str(item.get("product", "")))
        handler = runtime.handlers.get(str(item.get("handler") or config.handler))
        result = handler(request, config.options)
    except PermanentError as error:
        return _dead_item(runtime, request, claim.token, f"{type(error).__name__}: {error}", "permanent")
    except Exception as error:  # noqa: BLE001 - transient, or a handler bug: retried, then dead-lettered
        message = f"{type(error).__name__}: {error}"
        if not isinstance(error, TransientError | StoreUnavailable):
            log.error("handler raised an unexpected error for %s:%s\n%s", session_id, line_item_id,
                      traceback.format_exc())
        if claim.attempt >= runtime.settings.max_attempts:
            return _dead_item(runtime, request, claim.token, message, "exhausted")
        ledger.release_item(session_id, line_item_id, claim.token, message)
        delay = _delay(runtime, claim.attempt, getattr(error, "retry_after", None))
        log.warning("item %s:%s attempt %d failed (%s); retry in %.1f s", session_id, line_item_id,
                    claim.attempt, message, delay)
        raise task.retry(countdown=delay) from None
    if not ledger.record_result(session_id, line_item_id, claim.token, result):
        log.warning("item %s:%s: lease lost before the result was recorded; the handler's idempotency key "
                    "covers the repeat", session_id, line_item_id)
    return {"status": "done", "result": result}


def _dead_item(runtime: Runtime, request: FulfillmentRequest, token: str, message: str,
               reason: str) -> dict[str, Any]:
    runtime.ledger.record_failure(request.session_id, request.line_item_id, token, message)
    runtime.dead_letters.add(FULFILL_ITEM, [request.session_id, request.line_item_id], message, reason=reason,
                             attempts=request.attempt)
    log.error("item %s dead-lettered (%s) after %d attempt(s): %s", request.idempotency_key, reason,
              request.attempt, message)
    return {"status": "failed", "error": message, "reason": reason}


def register(app: CrossfillCelery) -> None:
    """Register crossfill's tasks on *app* under their stable names.

    Celery's own retry cap is off (``max_retries=None``): the tasks count attempts themselves
    (the ledger for items, the retry count for events) and dead-letter when they run out.
    """
    # process_event's outcome lives in the inbox and the ledger; only fulfill_item's result is read
    # (by fulfillment systems, under its deterministic task id).
    app.task(name=PROCESS_EVENT, bind=True, max_retries=None, ignore_result=True)(process_event)
    app.task(name=FULFILL_ITEM, bind=True, max_retries=None)(fulfill_item)
