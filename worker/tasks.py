"""Celery tasks: thin shells that parse ids, call the domain, and take the one retry path (worker/retries.py)."""
from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, Task

from fulfillment.errors import StoreUnavailable
from fulfillment.handlers import FulfillmentRequest
from fulfillment.ledger import BUSY, CLAIMED, DONE, FAILED
from fulfillment.pipeline import decide, ignore_other_mode
from fulfillment.report import CrossSellReport
from messaging.contract import FULFILL_ITEM, PROCESS_EVENT
from messaging.dispatch import dispatch_items
from ops.runtime import Runtime
from worker import heartbeat
from worker.retries import Attempt, retry_or_dead_letter

log = logging.getLogger(__name__)


def _runtime(task: Task) -> Runtime:
    runtime: Runtime = task.app.runtime
    return runtime


def process_event(task: Task, event_id: str, first_attempt_at: float | None = None) -> dict[str, Any]:
    """Turn one received event into an order and one fulfill_item task per line item still open."""
    runtime = _runtime(task)
    event = runtime.inbox.get(event_id)
    if event is None:
        log.warning("event %s is not in the inbox (expired or never received); nothing to do", event_id)
        return {"event_id": event_id, "outcome": "missing"}
    if ignore_other_mode(event, runtime.settings.stripe.livemode, runtime.inbox, runtime.stats):
        return {"event_id": event_id, "outcome": "ignored", "reason": "livemode_mismatch"}
    runtime.inbox.move(event_id, "processing")
    attempt = Attempt(PROCESS_EVENT, [event_id], task.request.retries + 1, first_attempt_at or time.time())
    try:
        decision = decide(event.type, event.session_id, runtime.stripe, runtime.ledger, runtime.catalog,
                          account=event.account, paid_at=event.created)
        dispatch_items(runtime.redis, event.session_id, decision.dispatch)
    except Exception as error:  # noqa: BLE001 - every failure takes the one retry-or-dead-letter path
        result = retry_or_dead_letter(task, runtime, attempt, error,
                                      on_dead=lambda message, reason: runtime.inbox.move(event_id, "failed"))
        return {"event_id": event_id, **result}
    runtime.inbox.move(event_id, "processed")
    if attempt.number > 1:
        runtime.waiting_retries.clear(attempt.id)
    log.info("event %s (%s): order %s is %s, %d item(s) dispatched", event_id, event.type, event.session_id,
             decision.order_status, len(decision.dispatch))
    return {"event_id": event_id, "outcome": "processed", "order_status": decision.order_status,
            "dispatched": len(decision.dispatch)}


def fulfill_item(task: Task, session_id: str, line_item_id: str,
                 first_attempt_at: float | None = None) -> dict[str, Any]:
    """Fulfill one line item at most once in effect: claim it in the ledger, call its handler, record."""
    runtime = _runtime(task)
    ledger = runtime.ledger
    claim = ledger.claim_item(session_id, line_item_id, lease_s=runtime.settings.retry.item_lease)
    if claim.outcome == DONE:
        return {"status": "done", "result": claim.result, "duplicate": True}
    if claim.outcome == FAILED:
        return {"status": "failed", "error": claim.error}
    if claim.outcome == BUSY:
        # Another run holds the lease; come back when it ends or expires (not an attempt of ours).
        raise task.retry(countdown=min(claim.wait_s + 1, runtime.settings.retry.item_lease))
    attempt = Attempt(FULFILL_ITEM, [session_id, line_item_id], claim.attempt, first_attempt_at or time.time())
    if claim.outcome != CLAIMED:
        letter = runtime.dead_letters.add(attempt.id, FULFILL_ITEM, attempt.args, "the item is not in the ledger",
                                          reason="permanent", attempts=0)
        return {"status": "failed", "error": letter.error}

    item, order = claim.item, claim.order
    assert item is not None and order is not None, "a claimed item comes with its record and its order's"
    # A connected account's product is fulfilled as that account's catalog says, signed with its secret.
    catalog = runtime.catalog.for_account(order.account)
    request = FulfillmentRequest(session_id=session_id, line_item_id=line_item_id, item=item, order=order,
                                 attempt=claim.attempt,
                                 signing_secret=catalog.handler_secret or runtime.settings.handler_secret)
    try:
        config = catalog.product(str(item.product))
        handler = runtime.handlers.get(item.handler or config.handler)
        with runtime.leases.held(session_id, line_item_id, claim.token):  # renewed while the handler runs
            result = handler(request, config.options)
    except Exception as error:  # noqa: BLE001 - every failure takes the one retry-or-dead-letter path
        outcome = retry_or_dead_letter(
            task, runtime, attempt, error,
            before_retry=lambda message: ledger.release_item(session_id, line_item_id, claim.token, message),
            on_dead=lambda message, reason: ledger.record_failure(session_id, line_item_id, claim.token, message))
        return {"status": "failed", **outcome}
    if not ledger.record_result(session_id, line_item_id, claim.token, result):
        log.warning("item %s:%s: lease lost before the result was recorded; the handler's idempotency key "
                    "covers the repeat", session_id, line_item_id)
    _count_in_report(runtime, session_id)
    if claim.attempt > 1:
        runtime.waiting_retries.clear(attempt.id)
    return {"status": "done", "result": result}


def _count_in_report(runtime: Runtime, session_id: str) -> None:
    """Add the order to the cross-sell rollups once it is fulfilled (idempotent). A failure here
    never fails the item: the order stays in the ledger's to_report set and the next drain counts it."""
    try:
        CrossSellReport(runtime.redis, runtime.catalog).count_if_due(session_id)
    except StoreUnavailable as error:
        log.warning("order %s: not counted in the report yet (%s); a later drain counts it", session_id, error)


def register(app: Celery) -> None:
    """Register crossfill's tasks on *app* under their stable names.

    Celery's own retry cap is off (``max_retries=None``): worker/retries.py decides when to stop.
    """
    # process_event's outcome lives in the inbox and the ledger; only fulfill_item's result is read
    # (by fulfillment systems, under its deterministic task id).
    app.task(name=PROCESS_EVENT, bind=True, max_retries=None, ignore_result=True)(process_event)
    app.task(name=FULFILL_ITEM, bind=True, max_retries=None)(fulfill_item)
    heartbeat.install()  # workers write their heartbeat to Redis (console, /metrics)
