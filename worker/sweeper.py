"""The sweeper: work whose message was lost is sent again, through the same idempotent path.

kombu's Redis transport takes a message with BRPOP and only then records it in its ``unacked``
hash: a worker killed in between loses the message (the same holds for the ``fulfill_item``
messages ``process_event`` pushes, and for a message popped as Redis dies). Every
``CROSSFILL_SWEEP_EVERY`` (beat), the sweeper first puts back what dead consumers held
(worker/redelivery.py; live workers do it too, on each beat), then looks at what has not moved for
``CROSSFILL_STUCK_AFTER``:

- inbox events ``enqueued`` or ``processing``: requeued when no message in the queues or held
  unacked by a consumer carries them;
- orders ``fulfilling``: their items ``pending`` (never claimed, or given back) or ``in_progress`` with
  an expired lease are dispatched again when no message carries them;
- orders ``awaiting_payment`` unchanged for ``payment_recheck`` (an hour): the session is read again
  (its async payment event may be lost) and fulfilled if it is paid.

A message held unacked counts as carrying its task whoever holds it: a live consumer's (a task
running, or a countdown retry waiting for its time) is never doubled, and a dead consumer's comes
back by itself within seconds. So the threshold only has to outlast the instant between a push and
its record (seconds, not the visibility timeout): a lost message is found within a sweep or two.

Looking for a message means reading the queues and the unacked hash: O(messages), done only when
there is something stuck to look for. Doubling a message is harmless anyway (the inbox and the ledger
dedupe); losing one is not.
"""
from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis

from fulfillment import defaults
from fulfillment.errors import PermanentError, StoreUnavailable, TransientError
from fulfillment.locks import Lock
from fulfillment.recovery import SweepReport, unheld
from fulfillment.stats import SWEEPER_RUNS, SWEPT, Stats
from fulfillment.store import reachable
from messaging.contract import FULFILL_ITEM, PROCESS_EVENT, QUEUES, fulfill_task_id
from messaging.dispatch import dispatch_items, requeue_stuck_event
from ops.runtime import Runtime
from ops.service import fulfill_session
from worker.redelivery import restore_dead

log = logging.getLogger(__name__)

LOCK_NAME = "sweep"  #: one sweep at a time across hosts (crossfill:lock:sweep)
UNACKED = "unacked"  #: kombu's Redis transport: delivery tag → [message, exchange, routing key]
PRIORITY_SEPARATOR = "\x06\x16"  #: kombu's Redis transport names a priority's list <queue><sep><priority>
PRIORITY_STEPS = (3, 6, 9)  #: kombu's default priority steps above 0 (0 is the queue's own list)
_SCAN_CHUNK = 500  #: messages read per Redis call while looking through the queues
#: Orders awaiting payment whose session is read again per sweep (API calls, under Stripe's rate limit).
PAYMENT_CHECKS_PER_SWEEP = 100

Task = tuple[str, ...]


def held_tasks(client: redis.Redis, queues: tuple[str, ...] = QUEUES) -> set[Task]:
    """Every task (name, then arguments) that a message waiting in *queues* or held unacked carries."""
    held: set[Task] = set()
    with reachable():
        for raw in _queued_messages(client, queues):
            task = task_of(raw)
            if task is not None:
                held.add(task)
        for _, entry in client.hscan_iter(UNACKED, count=_SCAN_CHUNK):
            try:
                payload = json.loads(entry)[0]
            except (ValueError, TypeError, IndexError, KeyError):
                continue
            task = task_of(payload)
            if task is not None:
                held.add(task)
    return held


def _queued_messages(client: redis.Redis, queues: tuple[str, ...]) -> Iterator[Any]:
    for queue in queues:
        for key in (queue, *(f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS)):
            start = 0
            while True:
                chunk: list[str] = client.lrange(key, start, start + _SCAN_CHUNK - 1)  # type: ignore[assignment]
                for raw in chunk:
                    try:
                        yield json.loads(raw)
                    except ValueError:
                        continue
                if len(chunk) < _SCAN_CHUNK:
                    break
                start += _SCAN_CHUNK


def task_of(payload: Any) -> Task | None:
    """``(task name, *args)`` of a kombu message (Celery protocol 2), or None when it is not one."""
    try:
        name = payload["headers"]["task"]
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return (str(name), *(str(arg) for arg in args))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def sweep(runtime: Runtime, *, now: float | None = None) -> SweepReport:
    """One sweep (see the module). A sweep that finds another one running returns ``skipped``.

    Raises:
        StoreUnavailable: Redis is down.
    """
    stamp = time.time() if now is None else now
    stuck_after = runtime.settings.recovery.stuck_after
    before = stamp - stuck_after
    report = SweepReport()
    lock = Lock(runtime.redis, LOCK_NAME, ttl_s=max(60.0, runtime.settings.recovery.sweep_every * 5))
    if not lock.acquire():
        report.skipped = True
        return report
    try:
        with reachable():
            restore_dead(runtime.redis, now=stamp)
        events = runtime.inbox.in_flight_since(before, limit=defaults.SWEEP_BATCH)
        orders = runtime.ledger.unchanged_since(before, limit=defaults.SWEEP_BATCH)
        fulfilling = [sid for sid, status in orders if status == "fulfilling"]
        waiting = [sid for sid, status in orders if status == "awaiting_payment"]
        report.events_checked, report.orders_checked = len(events), len(fulfilling)
        open_items = {sid: runtime.ledger.open_items(sid, now=stamp) for sid in fulfilling}
        held = held_tasks(runtime.redis) if events or any(open_items.values()) else set()
        _requeue_events(runtime, report, events, held, stuck_after, stamp)
        _redispatch_items(runtime, report, open_items, held, stamp)
        _check_payments(runtime, report, waiting[:PAYMENT_CHECKS_PER_SWEEP], stamp,
                        next_check=stamp + runtime.settings.recovery.payment_recheck - stuck_after)
    finally:
        lock.release()
    Stats(runtime.redis).incr_many({(SWEEPER_RUNS, ""): 1, (SWEPT, "events"): report.events_requeued,
                                    (SWEPT, "items"): report.items_redispatched,
                                    (SWEPT, "orders"): report.orders_paid_late})
    if report.events_requeued or report.items_redispatched or report.orders_paid_late or report.still_failing:
        log.warning("sweep: %d event(s) requeued, %d item(s) re-dispatched, %d order(s) found paid, %d failing: %s",
                    report.events_requeued, report.items_redispatched, report.orders_paid_late,
                    report.still_failing, ", ".join(report.requeued))
    return report


def _requeue_events(runtime: Runtime, report: SweepReport, events: list[str], held: set[Task],
                    stuck_after: float, now: float) -> None:
    for (_, event_id) in unheld(((PROCESS_EVENT, event_id) for event_id in events), held):
        was = requeue_stuck_event(runtime.inbox, event_id, stuck_after_s=stuck_after, now=now)
        if was is not None:
            log.warning("sweep: event %s was %s with no message for it (lost); enqueued again", event_id, was)
            report.events_requeued += 1
            report.note(event_id)


def _redispatch_items(runtime: Runtime, report: SweepReport, open_items: dict[str, list[str]], held: set[Task],
                      now: float) -> None:
    for sid, item_ids in open_items.items():
        lost = [line_item_id for (_, _, line_item_id) in unheld(((FULFILL_ITEM, sid, li) for li in item_ids), held)]
        if lost:
            dispatch_items(runtime.redis, sid, lost)
            for line_item_id in lost:
                log.warning("sweep: item %s was open with no message for it (lost); dispatched again",
                            fulfill_task_id(sid, line_item_id))
                report.note(fulfill_task_id(sid, line_item_id))
            report.items_redispatched += len(lost)
        runtime.ledger.touch(sid, now=now)  # looked at: again only after the threshold


def _check_payments(runtime: Runtime, report: SweepReport, waiting: list[str], now: float, *,
                    next_check: float) -> None:
    # Each check is a Stripe API call: an order read again is scored *next_check* in the ledger's
    # active index, so the sweeper passes it over until ``payment_recheck`` has gone by.
    for sid in waiting:
        report.payments_checked += 1
        try:
            decision = fulfill_session(runtime, sid)
        except StoreUnavailable:
            raise
        except (TransientError, PermanentError) as error:
            log.warning("sweep: order %s awaiting payment: its session could not be read (%s)", sid, error)
            report.still_failing += 1
        else:
            if decision.order_status != "awaiting_payment":
                log.warning("sweep: order %s was awaiting payment but its session is paid (the event was lost); "
                            "now %s, %d item(s) dispatched", sid, decision.order_status, len(decision.dispatch))
                report.orders_paid_late += 1
                report.note(sid)
                continue  # fulfilling now: its items are the sweeper's like any other order's
        runtime.ledger.touch(sid, now=next_check)
