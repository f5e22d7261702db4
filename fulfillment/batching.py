"""Reading the sessions of waiting events many at a time: the batch read strategy.

Stripe allows 25 reads a second of one endpoint. One retrieve per order caps a burst at 25 orders a
second; ``GET /v1/checkout/sessions`` is an endpoint of its own with the same 25/s, and one page of
it brings 100 sessions with their first page of line items. So when events of one account wait, the
worker that takes one of them claims the others (``Inbox.take``), reads their sessions together
(``StripeClient.read_sessions``: ``status=complete`` over the ``created`` window the waiting
sessions span, so every one of them is in the pages read) and decides each exactly as it would a
retrieved one (``pipeline.decide(session=...)``: the same payment gate, classification, catalog and
ledger). A lone event still takes the single retrieve: nothing waits on a batch.

Only events whose session is complete are batched (``completed`` and the two async payment
outcomes: a session is ``complete`` from its payment on); ``expired`` events are read alone. A page
is read when the batch is decided, never kept: nothing is fulfilled from older data than a retrieve
would give.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from fulfillment.events import ASYNC_FAILED, ASYNC_SUCCEEDED, COMPLETED
from fulfillment.schemas import CheckoutSession
from fulfillment.stripe_api import StripeClient

#: Event types whose session is ``complete``: the list filter ``status=complete`` finds it.
BATCHABLE: tuple[str, ...] = (COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED)


@dataclass(frozen=True)
class Wanted:
    """A session a batch reads: its id and when it was created (from the event's snapshot of it)."""

    session_id: str
    created: int


def session_created(body: str) -> int | None:
    """``data.object.created`` of a webhook body (the session's creation, unix seconds), or None."""
    try:
        created = json.loads(body)["data"]["object"]["created"]
    except (ValueError, KeyError, TypeError):
        return None
    return created if isinstance(created, int) and not isinstance(created, bool) else None


def read_together(client: StripeClient, wanted: Sequence[Wanted], *, account: str | None) -> dict[str, CheckoutSession]:
    """Read the sessions *wanted* through the list endpoint, over the ``created`` window they span;
    those not found (not complete any more, or beyond the pages read) are left out: the caller
    retrieves them one by one.

    Raises:
        TransientError, PermanentError: as the list read fails (nothing was decided yet).
    """
    if not wanted:
        return {}
    created = [one.created for one in wanted]
    return client.read_sessions({one.session_id for one in wanted}, created_gte=min(created),
                                created_lte=max(created), account=account)
