"""Every message crossfill queues goes through here, recorded and pushed in one atomic Redis call.

Four acts queue work, and each is all-or-nothing (Dramatiq's ``Broker.enqueue`` is the model):

- an event arrives (the receiver, reconciliation): recorded in the inbox and its ``process_event``
  message pushed in the inbox's script (:func:`enqueue_event`);
- an event is sent again (a replay from the CLI or the console, a dead letter, the sweeper finding
  its message lost): made ``enqueued`` and pushed in one script (:func:`replay_event`,
  :func:`requeue_stuck_event`);
- an order's open items are dispatched (``process_event``, reconciliation, the sweeper, a fulfil on
  request): one ``fulfill_item`` message per item under its deterministic task id, pushed in one
  ``LPUSH`` (:func:`dispatch_items`); a dead-lettered item is reopened and pushed in the ledger's
  script (:func:`replay_item`);
- a reconciliation is asked for now (the console): its message pushed (:func:`request_reconcile`).

Messages are Celery protocol 2 in kombu's Redis envelope (:func:`messaging.contract.task_message`),
so a Celery worker consumes them as if ``send_task`` had sent them; no Celery app is built here.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence

import redis

from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.store import reachable
from messaging.contract import (
    EVENTS_QUEUE,
    FULFILL_ITEM,
    FULFILLMENT_QUEUE,
    PROCESS_EVENT,
    RECONCILE,
    TASK_QUEUES,
    fulfill_task_id,
    task_message,
)


def event_message(event_id: str) -> str:
    """The ``process_event(event_id)`` message."""
    return task_message(PROCESS_EVENT, [event_id])


def item_message(session_id: str, line_item_id: str) -> str:
    """The ``fulfill_item(session_id, line_item_id)`` message, under the item's stable task id (its
    result is read by fulfillment systems, so it is kept)."""
    return task_message(FULFILL_ITEM, [session_id, line_item_id], ignore_result=False,
                        task_id=fulfill_task_id(session_id, line_item_id))


def enqueue_event(inbox: Inbox, event_id: str, event_type: str, session_id: str, body: str, *,
                  account: str | None = None, livemode: bool | None = None, change: str | None = None,
                  now: float | None = None) -> tuple[str, str]:
    """Record a delivery of an event and, when it is new (or stuck), push its message: one Lua call.
    *change* names the snapshot event it announces, so that a thin notification and its snapshot
    twin queue one message between them.

    Returns and raises as :meth:`Inbox.record` (``enqueued``, ``duplicate``, ``requeued`` or ``twin``).
    """
    return inbox.record(event_id, event_type, session_id, body, queue=EVENTS_QUEUE,
                        message=event_message(event_id), account=account, livemode=livemode, change=change,
                        now=now)


def replay_event(inbox: Inbox, event_id: str) -> str | None:
    """Process a recorded event again: the status it had (``ignored``: refused, nothing queued), or
    None when the inbox has no such event."""
    return inbox.replay(event_id, queue=EVENTS_QUEUE, message=event_message(event_id))


def requeue_stuck_event(inbox: Inbox, event_id: str, *, stuck_after_s: float, now: float) -> str | None:
    """Push an event's message again if it is still in flight and unchanged for *stuck_after_s*
    (its message was lost); the status it had, or None when it moved on meanwhile."""
    return inbox.requeue_if_stuck(event_id, queue=EVENTS_QUEUE, message=event_message(event_id),
                                  stuck_after_s=stuck_after_s, now=now)


def dispatch_items(client: redis.Redis, session_id: str, line_item_ids: Sequence[str]) -> None:
    """Queue ``fulfill_item`` for each of *line_item_ids*, in one ``LPUSH``.

    The ledger recorded them open before (``Ledger.open_order``), so a lost push is found by the
    sweeper; a doubled one ends in the ledger's claim (one effect per item).

    Raises:
        StoreUnavailable: Redis refused; nothing was pushed.
    """
    if not line_item_ids:
        return
    messages = [item_message(session_id, line_item_id) for line_item_id in line_item_ids]
    with reachable():
        client.lpush(FULFILLMENT_QUEUE, *messages)


def replay_item(ledger: Ledger, session_id: str, line_item_id: str) -> bool:
    """Run an item again (a dead-letter replay): reopened if failed and pushed, in the ledger's one
    script. False when the item was done already (nothing queued)."""
    return ledger.reopen_item(session_id, line_item_id, queue=FULFILLMENT_QUEUE,
                              message=item_message(session_id, line_item_id))


def request_reconcile(client: redis.Redis) -> str:
    """Queue one reconciliation run now (any worker runs it); its task id."""
    task_id = str(uuid.uuid4())
    with reachable():
        client.lpush(TASK_QUEUES[RECONCILE], task_message(RECONCILE, [], task_id=task_id))
    return task_id

