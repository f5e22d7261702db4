"""What ops engineers ask of a running crossfill: the state of queues and orders, and replays."""
from __future__ import annotations

import time
from typing import Any

from fulfillment.deadletters import DeadLetter
from worker import reconcile
from worker.app import CrossfillCelery
from worker.contract import (
    EVENTS_QUEUE,
    FULFILL_ITEM,
    FULFILLMENT_QUEUE,
    PROCESS_EVENT,
    QUEUES,
    event_dead_letter_id,
    fulfill_task_id,
)


def status(app: CrossfillCelery, *, ping_timeout: float = 1.0) -> dict[str, Any]:
    """Queue depths, dead letters, inbox and orders by status, and the workers that answer a ping."""
    runtime = app.runtime
    client = runtime.redis
    workers = app.control.ping(timeout=ping_timeout) or []
    return {
        "queues": {queue: int(client.llen(queue)) for queue in QUEUES},
        "dead_letters": runtime.dead_letters.count(),
        "inbox": runtime.inbox.counts(),
        "orders": runtime.ledger.counts(),
        "retries": runtime.waiting_retries.summary(now=time.time(), stale_after_s=runtime.settings.retry.visibility_timeout),
        "workers": sorted(name for reply in workers for name in reply),
    }


def replay_dead_letter(app: CrossfillCelery, letter: DeadLetter) -> str:
    """Run a dead-lettered task again; an item already done is left alone. Returns what happened."""
    runtime = app.runtime
    if letter.task == FULFILL_ITEM:
        session_id, line_item_id = letter.args
        item = runtime.ledger.item(session_id, line_item_id)
        if item is not None and item["status"] == "done":
            runtime.dead_letters.remove(letter.id)
            return "already done; nothing to replay"
        runtime.ledger.reopen_item(session_id, line_item_id)
        app.send_task(FULFILL_ITEM, args=[session_id, line_item_id], queue=FULFILLMENT_QUEUE,
                      task_id=fulfill_task_id(session_id, line_item_id))
    else:
        (event_id,) = letter.args
        _requeue_event(app, event_id)
    runtime.dead_letters.remove(letter.id)
    return "replayed"


def replay_event(app: CrossfillCelery, event_id: str) -> bool:
    """Process a received event again (e.g. after fixing the catalog); False when it is not in the inbox."""
    if app.runtime.inbox.get(event_id) is None:
        return False
    _requeue_event(app, event_id)
    app.runtime.dead_letters.remove(event_dead_letter_id(event_id))
    return True


def _requeue_event(app: CrossfillCelery, event_id: str) -> None:
    app.runtime.inbox.move(event_id, "enqueued")
    app.send_task(PROCESS_EVENT, args=[event_id], queue=EVENTS_QUEUE)


def fulfill_session(app: CrossfillCelery, session_id: str, *, account: str | None = None) -> dict[str, Any]:
    """Fulfil a session on request (the order API, a success page): the webhook's own idempotent path.

    Reads the session fresh, gates on payment and records the order (``fulfillment.pipeline.decide``),
    then queues ``fulfill_item`` for the items still open under their deterministic task ids, so a
    webhook and this call racing end in one fulfilment per item.

    A connected account's session (Connect) is read as *account*, or as the account its order recorded.

    Raises:
        TransientError, PermanentError, StoreUnavailable: as ``decide`` does.
    """
    decision = reconcile.fulfill_session(app.runtime, session_id, account=account)
    return {"session_id": session_id, "status": decision.order_status, "dispatched": len(decision.dispatch)}
