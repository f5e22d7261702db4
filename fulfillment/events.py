"""The Stripe event types crossfill acts on: the one place that names them.

Stripe's fulfillment guide: fulfil on ``checkout.session.completed`` and
``checkout.session.async_payment_succeeded`` (when the session is paid), record a failed async
payment, and close a session that expired unpaid. Every other type is acknowledged and ignored.
"""
from __future__ import annotations

COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
EXPIRED = "checkout.session.expired"

#: The event types crossfill processes, in the order a webhook endpoint subscribes to them.
HANDLED_TYPES: tuple[str, ...] = (COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, EXPIRED)


def is_handled(event_type: str) -> bool:
    """Whether crossfill processes events of *event_type* (others are acknowledged and ignored)."""
    return event_type in HANDLED_TYPES
