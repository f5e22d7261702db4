"""The Stripe event types crossfill acts on: the one place that names them.

Stripe's fulfillment guide: fulfil on ``checkout.session.completed`` and
``checkout.session.async_payment_succeeded`` (when the session is paid), record a failed async
payment, and close a session that expired unpaid. Every other type is acknowledged and ignored.

An event destination with thin payloads announces the same v1 events as ``v1.<type>``
(``v1.checkout.session.completed``): crossfill acts on them exactly as on their snapshot twins.
"""
from __future__ import annotations

COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
EXPIRED = "checkout.session.expired"

#: The event types crossfill processes, in the order a webhook endpoint subscribes to them.
HANDLED_TYPES: tuple[str, ...] = (COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, EXPIRED)


THIN_PREFIX = "v1."  #: how a thin event names a v1 event type
#: The thin event types crossfill processes (the same changes as HANDLED_TYPES, announced thin).
THIN_HANDLED_TYPES: tuple[str, ...] = tuple(THIN_PREFIX + name for name in HANDLED_TYPES)


def is_handled(event_type: str) -> bool:
    """Whether crossfill processes events of *event_type*, snapshot or thin (others are acknowledged
    and ignored)."""
    return event_type in HANDLED_TYPES or event_type in THIN_HANDLED_TYPES


def action_type(event_type: str) -> str:
    """The snapshot type an event acts as: ``v1.checkout.session.completed`` → ``checkout.session.completed``;
    any other type unchanged."""
    return event_type[len(THIN_PREFIX):] if event_type in THIN_HANDLED_TYPES else event_type
