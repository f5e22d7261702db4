"""Reading the sessions of waiting events many at a time: the batch read strategy.

Stripe allows 25 reads a second of one endpoint. One retrieve per order caps a burst at 25 orders a
second; ``GET /v1/checkout/sessions`` is an endpoint of its own with the same 25/s, and one page of
it brings 100 sessions with their first page of line items. So when events of one account wait, the
worker that takes one of them claims the others (``Inbox.take``), reads their sessions together
(``StripeClient.session_pages``: ``status=complete`` over the ``created`` window the waiting
sessions span), claims too the waiting events of every other session a page holds
(``Inbox.claim_sessions``) and decides each on its page exactly as it would a retrieved one
(``pipeline.decide(session=...)``: the same payment gate, classification, catalog and ledger). A
lone event still takes the single retrieve: nothing waits on a batch. The task side is
``worker/tasks.py``.

Only events whose session is complete are batched (``completed`` and the two async payment
outcomes: a session is ``complete`` from its payment on); ``expired`` events are read alone. A page
is read when the batch is decided, never kept: nothing is fulfilled from older data than a retrieve
would give.
"""
from __future__ import annotations

import json

from fulfillment.events import ASYNC_FAILED, ASYNC_SUCCEEDED, COMPLETED

#: Event types whose session is ``complete``: the list filter ``status=complete`` finds it.
BATCHABLE: tuple[str, ...] = (COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED)


def session_created(body: str) -> int | None:
    """``data.object.created`` of a webhook body (the session's creation, unix seconds), or None."""
    try:
        created = json.loads(body)["data"]["object"]["created"]
    except (ValueError, KeyError, TypeError):
        return None
    return created if isinstance(created, int) and not isinstance(created, bool) else None
