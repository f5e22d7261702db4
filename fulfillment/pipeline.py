"""From a received event to the items to fulfill: the payment gate and the order record.

The session is always read fresh from the API (a webhook's copy may be stale, and never has line
items), then gated on payment as Stripe's fulfillment guide says.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from fulfillment.catalog import Catalog
from fulfillment.events import ASYNC_FAILED, EXPIRED, action_type
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.livemode import MISMATCH, is_mismatch
from fulfillment.orders import classify_items, order_summary
from fulfillment.records import InboxEvent
from fulfillment.schemas import CheckoutSession
from fulfillment.stats import LIVEMODE_MISMATCH, Stats
from fulfillment.stripe_api import StripeClient

log = logging.getLogger(__name__)

#: An order may fall back to these states only from "waiting for the money" (or from nothing).
_BEFORE_PAYMENT = ("awaiting_payment",)


@dataclass(frozen=True)
class Decision:
    """What an event led to: the order's status now, and the items still to fulfill."""

    order_status: str
    dispatch: tuple[str, ...] = ()


def ignore_other_mode(event: InboxEvent, livemode: bool | None, inbox: Inbox, stats: Stats) -> bool:
    """The worker's livemode gate, behind the receiver's: an event whose ``livemode`` is not *livemode*
    (the API key's mode) is recorded as ignored (``livemode_mismatch``) and counted, before anything
    is read or fulfilled. Returns whether it was ignored."""
    if not is_mismatch(event.livemode, livemode):
        return False
    inbox.ignore(event.id, MISMATCH)
    stats.incr(LIVEMODE_MISMATCH, "worker")
    log.warning("event %s is %s mode, crossfill runs in %s mode: ignored", event.id,
                "live" if event.livemode else "test", "live" if livemode else "test")
    return True


def decide(event_type: str, session_id: str, client: StripeClient, ledger: Ledger, catalog: Catalog, *,
           account: str | None = None, paid_at: float | None = None,
           session: CheckoutSession | None = None) -> Decision:
    """Read the session, gate on payment, record the order, and return the items to dispatch.

    *account* is the connected account a Connect event came from: the session is read as that
    account, its items classified by its catalog, and the order records it. *paid_at* is when the
    event was created (unix seconds): a paid order's lateness counts from it (default: now).
    *session* is the session as a batch just read it (``StripeClient.session_pages``: as fresh as a
    retrieve, its first page of line items embedded); without it, the session is retrieved now.
    Either way the rest is the same.

    *event_type* is a snapshot type or its thin form (``v1.checkout.session.completed``).

    Safe to call any number of times, concurrently, in any order of events: the ledger keeps one
    record per item, and an order that was fulfilled is never moved back.

    Raises:
        TransientError: the API failed in a way a retry can fix.
        PermanentError: the API refused (e.g. an unknown session).
        StoreUnavailable: Redis is down.
    """
    event_type = action_type(event_type)  # a thin notification acts as its snapshot twin
    if session is None or session.id != session_id:
        session = client.retrieve_session(session_id, account=account)
    if session.has_unknown_payment_status:
        # Fail safe: a payment status newer than crossfill is not "paid"; the order waits, and says so
        # (the client counted it: crossfill_unknown_values_total{field="payment_status"}).
        log.warning("session %s has payment_status %r, which this version does not know; not fulfilled",
                    session_id, session.payment_status[:40])
    summary = order_summary(session, account=account)
    if event_type == EXPIRED:
        return Decision(ledger.mark_order(session_id, "expired", summary, allowed_from=_BEFORE_PAYMENT) or "")
    if event_type == ASYNC_FAILED and not session.is_fulfillable:
        return Decision(ledger.mark_order(session_id, "payment_failed", summary, allowed_from=_BEFORE_PAYMENT) or "")
    if not session.is_fulfillable:
        return Decision(ledger.mark_order(session_id, "awaiting_payment", summary, allowed_from=_BEFORE_PAYMENT)
                        or "")
    items = classify_items(session, list(client.line_items(session, account=account)), catalog.for_account(account))
    status, dispatch = ledger.open_order(session_id, order_summary(session, items, account=account), items,
                                         paid_at=paid_at)
    return Decision(status, tuple(dispatch))

