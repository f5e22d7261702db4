"""Celery tasks: thin shells that parse ids, call the domain, and map errors to retries."""
from __future__ import annotations

import logging
from typing import Any

from celery import Task

from worker.app import PROCESS_EVENT, CrossfillCelery

log = logging.getLogger(__name__)


def process_event(task: Task, event_id: str) -> dict[str, Any]:
    """Take one received event out of the inbox and mark it processed.

    Fulfillment (session and line items from the Stripe API, one task per item) is not built yet:
    this task only moves the event through the inbox, and says so in its result.
    """
    inbox = task.app.runtime.inbox  # type: ignore[attr-defined]
    event = inbox.get(event_id)
    if event is None:
        log.warning("event not in the inbox; nothing to do", extra={"event_id": event_id})
        return {"event_id": event_id, "outcome": "missing"}
    if event.status == "processed":
        return {"event_id": event_id, "outcome": "already_processed"}
    inbox.move(event_id, "processing")
    inbox.move(event_id, "processed")
    log.info("event processed", extra={"event_id": event_id, "type": event.type})
    return {"event_id": event_id, "outcome": "processed", "fulfillment": "not_implemented"}


def register(app: CrossfillCelery) -> None:
    """Register crossfill's tasks on *app* under their stable names."""
    app.task(name=PROCESS_EVENT, bind=True)(process_event)
