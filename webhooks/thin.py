"""Thin event notifications (``"object": "v2.core.event"``), validated like snapshot events.

An event destination with ``event_payload: thin`` posts ``{"id", "object": "v2.core.event", "type":
"v1.checkout.session.completed", "created": "<RFC 3339>", "livemode", "context"?: "acct_...",
"related_object": {"id", "type", "url"}, "snapshot_event"?: "evt_...", "reason"?}``, signed like a
webhook with the destination's own secret. crossfill needs no more than that: the session's id
(``related_object.id``), its account (``context``, sent as ``Stripe-Account`` on reads) and the
snapshot twin (``snapshot_event``, which dedupes the twins). The worker re-reads the session anyway,
so the event itself (``GET /v2/core/events/{id}``) is not fetched.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from fulfillment.events import is_handled
from fulfillment.ids import ACCOUNT_ID, EVENT_ID, SESSION_ID
from webhooks.envelope import EVENT_TYPE, MAX_TYPE_CHARS

THIN_OBJECT = "v2.core.event"  #: ``object`` of a thin notification
SNAPSHOT_OBJECT = "event"  #: ``object`` of a v1 (snapshot) event
SESSION_OBJECT_TYPE = "checkout_session"  #: ``related_object.type`` of a Checkout Session
MAX_CONTEXT_CHARS = 255


class _RelatedObject(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    type = fields.String(required=True, validate=validate.Length(min=1, max=100))
    url = fields.String(load_default=None, allow_none=True)


def _rfc3339(value: str) -> None:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("must be an RFC 3339 timestamp like 2026-12-04T10:00:00.000Z") from None


class ThinEnvelope(Schema):
    """The fields of a thin notification crossfill relies on; other fields are excluded."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Regexp(
        EVENT_ID, error="must be an event id like evt_... (letters, digits, _; at most 254 characters)"))
    object = fields.String(required=True, validate=validate.Equal(THIN_OBJECT))
    type = fields.String(required=True, validate=[
        validate.Length(min=1, max=MAX_TYPE_CHARS),
        validate.Regexp(EVENT_TYPE, error="must be an event type like v1.checkout.session.completed "
                                          "(dotted lowercase words)")])
    #: v2 timestamps are RFC 3339 strings, not unix seconds.
    created = fields.String(required=True, validate=[validate.Length(max=64), _rfc3339])
    livemode = fields.Boolean(required=True)
    context = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_CONTEXT_CHARS))
    related_object = fields.Nested(_RelatedObject, load_default=None, allow_none=True)
    snapshot_event = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        EVENT_ID, error="must be an event id like evt_..."))

    @validates_schema
    def _session_for_handled_types(self, data: dict[str, Any], **_: Any) -> None:
        if not is_handled(str(data.get("type"))):
            return
        related = data.get("related_object") or {}
        if related.get("type") != SESSION_OBJECT_TYPE or not SESSION_ID.match(str(related.get("id"))):
            raise ValidationError("a v1.checkout.session.* notification must name a checkout_session related "
                                  "object with an id like cs_...", field_name="related_object")
        context = data.get("context")
        if context is not None and not ACCOUNT_ID.match(context):
            raise ValidationError("must be a connected account id like acct_... (the account the session "
                                  "belongs to)", field_name="context")


_SCHEMA = ThinEnvelope()


def load_notification(document: dict[str, Any]) -> dict[str, Any]:
    """Validate a decoded thin notification.

    Raises:
        ValidationError: with the failing fields.
    """
    return _SCHEMA.load(document)
