"""What a verified webhook body announces, snapshot event or thin notification, in one shape.

``POST /webhooks/stripe`` takes both, told apart by ``object``: ``"event"`` (a v1 snapshot event, from
a webhook endpoint or a snapshot destination) or ``"v2.core.event"`` (a thin notification, from an
event destination with ``event_payload: thin``). Everything after parsing (the livemode gate, the
inbox, the worker) reads a :class:`Delivery`.
"""
from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError

from fulfillment.events import is_handled
from webhooks.envelope import decode, load_event
from webhooks.errors import InvalidPayload
from webhooks.thin import THIN_OBJECT, load_notification


@dataclass(frozen=True)
class Delivery:
    """One verified, validated event as the receiver acts on it."""

    id: str  #: the event's id (``evt_...``): the inbox dedupes on it
    type: str  #: ``checkout.session.completed``, or thin ``v1.checkout.session.completed``
    livemode: bool
    account: str | None  #: the connected account (``account``, or a thin notification's ``context``)
    session_id: str  #: the Checkout Session of a handled type; "" otherwise
    #: The snapshot event id this announces (its own id, or a thin notification's ``snapshot_event``):
    #: twins naming one change are queued once. None when a thin notification names none.
    change: str | None
    thin: bool


def parse_delivery(body: bytes) -> Delivery:
    """Decode and validate a verified body: a snapshot event, or a thin notification.

    Raises:
        InvalidPayload: when the body is not UTF-8 JSON, or not a well-formed event of either kind.
    """
    document = decode(body)
    if document.get("object") != THIN_OBJECT:
        event = load_event(document)
        handled = is_handled(event["type"])
        return Delivery(id=event["id"], type=event["type"], livemode=event["livemode"], account=event["account"],
                        session_id=event["data"]["object"]["id"] if handled else "", change=event["id"], thin=False)
    try:
        notification = load_notification(document)
    except ValidationError as error:
        raise InvalidPayload("the body is not a valid Stripe thin event notification",
                             fields=error.messages_dict) from None
    handled = is_handled(notification["type"])
    return Delivery(id=notification["id"], type=notification["type"], livemode=notification["livemode"],
                    account=notification["context"] if handled else None,
                    session_id=notification["related_object"]["id"] if handled else "",
                    change=notification["snapshot_event"], thin=True)
