"""Reconciliation: what the Stripe API says happened, against what crossfill recorded.

Stripe delivers at least once, retries for three days, and still loses what an endpoint that was
down longer, a wrong secret or a dropped delivery never got; Redis with ``appendfsync everysec`` can
lose the last second of acknowledged writes when its machine dies. Reconciliation lists the
``checkout.session.*`` events of the window (Events API) and records every one the inbox does not
hold through the receiver's own atomic path (``messaging.dispatch.enqueue_event``); then
lists the completed Checkout Sessions of the window and fulfils every paid one that has no order yet,
as if its event had arrived (``ops.service.fulfill_session``, the webhook's idempotent path). Running it
twice, or alongside a late webhook, fulfils nothing twice: the inbox dedupes events, the ledger items.

A deployment that receives thin notifications (an event destination) is covered by the same lists:
the v1 Events API holds every v1 event whichever way it was announced, and an event recorded here is
the snapshot twin of the thin notification that never arrived (the inbox queues one of the two).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

from fulfillment import defaults
from fulfillment.errors import PermanentError, StoreUnavailable, TransientError
from fulfillment.events import HANDLED_TYPES
from fulfillment.inbox import DUPLICATE, TWINNED
from fulfillment.liveness import RECONCILE_LAST_SUCCESS
from fulfillment.locks import Lock
from fulfillment.recovery import ReconcileReport, session_needs_fulfillment
from fulfillment.stats import RECONCILE_RECOVERED, RECONCILE_RUNS, Stats
from fulfillment.store import batches, reachable
from messaging.dispatch import enqueue_event
from ops.runtime import Runtime
from ops.service import fulfill_session
from worker.retries import describe

log = logging.getLogger(__name__)

LOCK_NAME = "reconcile"  #: one run at a time across hosts (crossfill:lock:reconcile)
_BATCH = 100  #: objects checked against Redis per round trip


def reconcile(runtime: Runtime, *, since: float | None = None, undelivered: bool = False,
              dry_run: bool = False, now: float | None = None) -> ReconcileReport:
    """One reconciliation run over the events and sessions created since *since* (unix seconds; by
    default the configured window back from now). With *undelivered*, only events Stripe has not
    delivered to some endpoint (``delivery_success=false``). With *dry_run*, count what would be
    recovered and write nothing.

    Only one run works at a time across hosts: a run that finds the lock taken returns a report
    with ``skipped`` set.

    Raises:
        TransientError, PermanentError: listing from the Stripe API failed; the run did not complete.
        StoreUnavailable: Redis is down.
    """
    stamp = time.time() if now is None else now
    start = int(stamp - runtime.settings.recovery.reconcile_window) if since is None else int(since)
    report = ReconcileReport(since=start, dry_run=dry_run)
    lock = Lock(runtime.redis, LOCK_NAME, ttl_s=defaults.RECONCILE_LOCK_S)
    if not lock.acquire():
        log.info("reconcile: another run holds the lock; skipped")
        report.skipped = True
        return report
    try:
        for account in _accounts(runtime):
            in_flight = _recover_events(runtime, report, lock, undelivered=undelivered, account=account)
            _recover_sessions(runtime, report, lock, in_flight, account=account)
    finally:
        lock.release()
    if not dry_run:
        Stats(runtime.redis).incr_many({(RECONCILE_RUNS, ""): 1,
                                        (RECONCILE_RECOVERED, "events"): report.events_recovered,
                                        (RECONCILE_RECOVERED, "sessions"): report.sessions_recovered})
        with reachable():
            runtime.redis.set(RECONCILE_LAST_SUCCESS, f"{time.time():.3f}")
    log.info("reconcile since %d: %d event(s) seen, %d known, %d recovered; %d session(s) seen, %d recovered; "
             "%d still failing%s", start, report.events_seen, report.events_known, report.events_recovered,
             report.sessions_seen, report.sessions_recovered, report.still_failing, " (dry run)" if dry_run else "")
    return report


def _accounts(runtime: Runtime) -> Iterator[str | None]:
    """The platform's own account (None), then each connected account (Connect), whose events and
    sessions only a read as that account lists. An account that is not a platform has none: Stripe
    refuses the list, and only the account's own objects are reconciled."""
    yield None
    try:
        yield from runtime.stripe.list_connected_accounts()
    except PermanentError as error:
        log.debug("reconcile: no connected accounts listed (%s)", error)


def _recover_events(runtime: Runtime, report: ReconcileReport, lock: Lock, *, undelivered: bool,
                    account: str | None) -> set[str]:
    """Record every listed event the inbox lacks; returns the sessions whose events were just enqueued."""
    in_flight: set[str] = set()
    listed = runtime.stripe.list_events(HANDLED_TYPES, created_gte=report.since, undelivered=undelivered,
                                        account=account)
    for batch in batches(listed, _BATCH):
        report.events_seen += len(batch)
        for event, known in zip(batch, runtime.inbox.known([event["id"] for event in batch]), strict=True):
            if known:
                report.events_known += 1
                continue
            session_id = event["data"]["object"]["id"]
            if not report.dry_run:
                outcome, _ = enqueue_event(runtime.inbox, event["id"], event["type"], session_id, json.dumps(event),
                                           account=event.get("account") or account, livemode=event.get("livemode"),
                                           change=event["id"])
                # Its webhook arrived meanwhile, or its thin notification (twin) was recorded before.
                if outcome in (DUPLICATE, TWINNED):
                    report.events_known += 1
                    continue
                log.warning("reconcile: event %s (%s, %s) was never received; recorded and enqueued",
                            event["id"], event["type"], session_id)
            report.events_recovered += 1
            report.note_recovered(event["id"])
            in_flight.add(session_id)
        lock.renew()
    return in_flight


def _recover_sessions(runtime: Runtime, report: ReconcileReport, lock: Lock, in_flight: set[str], *,
                      account: str | None) -> None:
    """Fulfil every paid completed session that has no order under way and no event just enqueued."""
    listed = runtime.stripe.list_sessions(status="complete", created_gte=report.since, account=account)
    for batch in batches(listed, _BATCH):
        report.sessions_seen += len(batch)
        statuses = runtime.ledger.statuses([session.id for session in batch])
        for session, order_status in zip(batch, statuses, strict=True):
            if not session_needs_fulfillment(session, order_status) or session.id in in_flight:
                report.sessions_known += 1
                continue
            if report.dry_run:
                report.sessions_recovered += 1
                report.note_recovered(session.id)
                continue
            lock.renew()  # each read may wait on the rate limiter: keep the (short) lock while working
            try:
                decision = fulfill_session(runtime, session.id, account=account)
            except StoreUnavailable:
                raise
            except (TransientError, PermanentError) as error:
                log.warning("reconcile: session %s is paid with no order, and could not be fulfilled yet: %s",
                            session.id, error)
                report.note_failing(session.id, describe(error))
                continue
            log.warning("reconcile: session %s was paid with no order (its event never arrived); order %s, "
                        "%d item(s) dispatched", session.id, decision.order_status, len(decision.dispatch))
            report.sessions_recovered += 1
            report.note_recovered(session.id)
        lock.renew()

