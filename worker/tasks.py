"""Celery tasks: thin shells that parse ids, call the domain, and take the one retry path (worker/retries.py)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from fulfillment import defaults
from fulfillment.batching import BATCHABLE, session_created
from fulfillment.errors import StoreUnavailable
from fulfillment.handlers import FulfillmentRequest
from fulfillment.inbox import Claimed
from fulfillment.ledger import BUSY, CLAIMED, DONE, FAILED
from fulfillment.pipeline import Decision, decide, ignore_other_mode
from fulfillment.records import InboxEvent, livemode_of
from fulfillment.schemas import CheckoutSession
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
    """Turn one received event into an order and one fulfill_item task per line item still open; with
    other events of its account waiting, their orders too, from pages of their sessions (a batch)."""
    runtime = _runtime(task)
    event = runtime.inbox.get(event_id)
    if event is None:
        log.warning("event %s is not in the inbox (expired or never received); nothing to do", event_id)
        return {"event_id": event_id, "outcome": "missing"}
    if event.batch_until:
        if event.status == "processed":  # a batch decided it; this is its own message arriving after
            return {"event_id": event_id, "outcome": "processed", "batched": True}
        held_s = event.batch_until - time.time()
        if event.status == "processing" and held_s > 0:
            # A batch is deciding it now; look again when it must have ended (if it died, process it then).
            raise task.retry(countdown=min(held_s, BATCH_RECHECK_S) + 0.1)
    if ignore_other_mode(event, runtime.settings.stripe.livemode, runtime.inbox, runtime.stats):
        return {"event_id": event_id, "outcome": "ignored", "reason": "livemode_mismatch"}
    batch = runtime.settings.stripe.batch_reads if event.type in BATCHABLE else 0
    _, claimed = runtime.inbox.take(event_id, account=event.account, batch=max(0, batch - 1), types=BATCHABLE)
    attempt = Attempt(PROCESS_EVENT, [event_id], task.request.retries + 1, first_attempt_at or time.time())
    outcome: dict[str, Any] = {}

    def decide_own(session: CheckoutSession | None) -> None:
        try:
            outcome["decision"] = _decide(runtime, event.type, event.session_id, event.account, session,
                                          paid_at=event.created)
        except Exception as error:  # noqa: BLE001 - every failure takes the one retry-or-dead-letter path
            outcome["error"] = error

    batched = _run_batch(runtime, event, claimed, decide_own) if claimed else 0
    if not outcome:  # read alone (nothing waited), or its session was not on the pages read
        decide_own(None)
    if "error" in outcome:
        result = retry_or_dead_letter(task, runtime, attempt, outcome["error"],
                                      on_dead=lambda message, reason: runtime.inbox.move(event_id, "failed"))
        return {"event_id": event_id, **result}
    decision: Decision = outcome["decision"]
    runtime.inbox.move(event_id, "processed")
    if attempt.number > 1:
        runtime.waiting_retries.clear(attempt.id)
    log.info("event %s (%s): order %s is %s, %d item(s) dispatched; %d more event(s) in its batch", event_id,
             event.type, event.session_id, decision.order_status, len(decision.dispatch), batched)
    return {"event_id": event_id, "outcome": "processed", "order_status": decision.order_status,
            "dispatched": len(decision.dispatch), "batched": batched}


#: Longest a message of an event held by a batch waits before it looks again, seconds.
BATCH_RECHECK_S = 5.0


def _decide(runtime: Runtime, event_type: str, session_id: str, account: str | None,
            session: CheckoutSession | None, *, paid_at: float | None) -> Decision:
    """The one path from a session read (*session*; None: retrieve it now) to an order and its items
    queued; *paid_at* is when the paying event was created (the order's lateness counts from it)."""
    decision = decide(event_type, session_id, runtime.stripe, runtime.ledger, runtime.catalog, account=account,
                      session=session, paid_at=paid_at)
    dispatch_items(runtime.redis, session_id, decision.dispatch)
    return decision


def _run_batch(runtime: Runtime, event: InboxEvent, claimed: list[Claimed],
               decide_own: Callable[[CheckoutSession | None], None]) -> int:
    """Read the sessions of *event* and of the events claimed with it page by page (``created`` window
    they span, ``status=complete``) and decide each on the page its session is on; claim too the waiting
    events of any other session a page holds. Events whose session no page held are released to their
    own messages, to be read alone; *event* is then retrieved alone by the caller. Returns how many
    claimed events were processed."""
    held = {one.id: one for one in claimed}
    created = [value for body in (event.body, *(one.body for one in claimed))
               if (value := session_created(body)) is not None]
    known = {event.session_id, *(one.session_id for one in claimed)}
    done, own_done = 0, False
    try:
        if len(created) == len(claimed) + 1:
            pages = -(-len(known) // defaults.LIST_PAGE_SIZE) + defaults.BATCH_MAX_PAGES
            # A page a few times the batch: a small batch does not pay for a hundred sessions it never uses.
            limit = min(defaults.LIST_PAGE_SIZE, max(defaults.BATCH_MIN_PAGE, 4 * len(known)))
            for page in runtime.stripe.session_pages(created_gte=min(created), created_lte=max(created),
                                                     account=event.account, max_pages=pages, limit=limit):
                extra = runtime.inbox.claim_sessions(page.ids - known, account=event.account, types=BATCHABLE)
                known.update(one.session_id for one in extra)
                held.update((one.id, one) for one in extra)
                sessions = {sid: page.session(sid) for sid in page.ids & known}
                for one in [one for one in held.values() if one.session_id in sessions]:
                    del held[one.id]
                    done += _decide_claimed(runtime, event.account, one, sessions[one.session_id])
                if not own_done and event.session_id in sessions:
                    decide_own(sessions[event.session_id])
                    own_done = True
                runtime.stripe.count_read(sessions.values())
                if own_done and not held:
                    break
    except Exception as error:  # noqa: BLE001 - a batch is an optimisation: what it did not decide goes its own way
        log.warning("a batch read failed (%s); %d claimed event(s) go back to their own messages", error, len(held))
    # Not on the pages read (or the read failed): each goes back to its own message, to be read alone
    # there; claiming them again would read the same pages again.
    for one in held.values():
        _release(runtime, one.id, alone=True)
    return done


def _decide_claimed(runtime: Runtime, account: str | None, one: Claimed, session: CheckoutSession) -> int:
    """Decide an event claimed by a batch from its session on the batch's page: 1 when processed; one
    that fails is released to its own message, which reads and retries it alone (0)."""
    event = InboxEvent(id=one.id, type=one.type, session_id=one.session_id, status="processing", body=one.body,
                       received_at=0.0, deliveries=0, account=account, livemode=livemode_of(one.body))
    try:
        if ignore_other_mode(event, runtime.settings.stripe.livemode, runtime.inbox, runtime.stats):
            return 0
        _decide(runtime, one.type, one.session_id, account, session, paid_at=event.created)
        runtime.inbox.move(one.id, "processed")
    except Exception as error:  # noqa: BLE001 - its own message takes the retry-or-dead-letter path
        log.warning("event %s of a batch: %s; released to its own message", one.id, error)
        _release(runtime, one.id, alone=True)
        return 0
    return 1


def _release(runtime: Runtime, event_id: str, *, alone: bool = False) -> None:
    try:
        runtime.inbox.release(event_id, alone=alone)
    except Exception:  # noqa: BLE001 - Redis down: the claim ends by itself (batch_until)
        log.warning("event %s: not released (its claim ends by itself)", event_id)


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
    recorded, report_due = ledger.record_result_due(session_id, line_item_id, claim.token, result)
    if not recorded:
        log.warning("item %s:%s: lease lost before the result was recorded; the handler's idempotency key "
                    "covers the repeat", session_id, line_item_id)
    if report_due:
        _count_in_report(runtime, session_id)
    if claim.attempt > 1:
        runtime.waiting_retries.clear(attempt.id)
    return {"status": "done", "result": result}


def _count_in_report(runtime: Runtime, session_id: str) -> None:
    """Add the order to the cross-sell rollups once it is fulfilled (idempotent). A failure here
    never fails the item: the order stays in the ledger's to_report set and the next drain counts it."""
    try:
        runtime.report.count(session_id)
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
