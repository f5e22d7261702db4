"""The message contract between the receiver, the workers and ops tools: names and the wire format.

Queue names, task names, task ids, dead-letter ids and the wire format of a task message live
here and nowhere else. It imports no task, no pipeline, no handler and no Stripe client, so the
receiver (``webhooks/``) can build messages without loading the worker.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from functools import lru_cache
from typing import Any

from celery import Celery
from kombu.serialization import dumps as serialize

EVENTS_QUEUE = "events"  #: process_event messages
FULFILLMENT_QUEUE = "fulfillment"  #: fulfill_item messages
QUEUES = (EVENTS_QUEUE, FULFILLMENT_QUEUE)

PROCESS_EVENT = "process_event"  #: process_event(event_id)
FULFILL_ITEM = "fulfill_item"  #: fulfill_item(session_id, line_item_id)
RECONCILE = "reconcile"  #: reconcile() — beat's schedule, the console's "reconcile now"
SWEEP = "sweep"  #: sweep() — beat's schedule

#: The queue each task is routed to.
TASK_QUEUES = {PROCESS_EVENT: EVENTS_QUEUE, FULFILL_ITEM: FULFILLMENT_QUEUE, RECONCILE: EVENTS_QUEUE,
               SWEEP: EVENTS_QUEUE}


def fulfill_task_id(session_id: str, line_item_id: str) -> str:
    """The stable Celery task id of an item's fulfillment; a fulfillment system can read its result."""
    return f"fulfill:{session_id}:{line_item_id}"


def dead_letter_id(task: str, args: list[str]) -> str:
    """The dead letter's id for a task and its arguments: ``fulfill:{session}:{item}`` or ``event:{evt}``."""
    if task == FULFILL_ITEM:
        return fulfill_task_id(*args)
    return ":".join(["event", *args])


def event_dead_letter_id(event_id: str) -> str:
    """The dead letter's id of an event that could not be processed."""
    return dead_letter_id(PROCESS_EVENT, [event_id])


@lru_cache(maxsize=1)
def _message_builder() -> Celery:
    # A bare app is enough to build protocol-2 messages; the worker's configured app builds the same.
    return Celery("crossfill", set_as_current=False)


def task_message(name: str, args: list[Any], *, ignore_result: bool = True, task_id: str | None = None) -> str:
    """The message ``app.send_task(name, args)`` would push onto the task's Redis list.

    Celery builds the task itself (protocol 2, ``app.amqp.as_task_v2``); this wraps it in kombu's
    Redis envelope, so that the receiver can push it inside the inbox's own Lua script: recording
    the event and enqueueing it become one atomic Redis call instead of three round trips.
    ``tests/messaging/test_task_message.py`` holds it equal to what ``send_task`` writes, field by field
    (but for ``crossfill_sent_at``, the time it was built, which crossfill's lateness figures read),
    so a Celery or kombu upgrade that changes the format fails the suite instead of the service.
    """
    task_id = task_id or str(uuid.uuid4())
    task = _message_builder().amqp.as_task_v2(task_id, name, args=args, kwargs={}, ignore_result=ignore_result)
    content_type, content_encoding, body = serialize(task.body, serializer="json")
    envelope = {
        "body": base64.b64encode(body.encode() if isinstance(body, str) else body).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": task.headers,
        "properties": {
            **task.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": TASK_QUEUES[name]},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
            # When crossfill queued it: the age of a queue's oldest waiting message (fulfillment/lateness.py).
            # Only crossfill reads it; kombu and Celery keep a message's other properties untouched.
            "crossfill_sent_at": time.time(),
        },
    }
    return json.dumps(envelope)
