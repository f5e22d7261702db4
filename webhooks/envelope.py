"""The Stripe event envelope, validated with marshmallow before anything is recorded."""
from __future__ import annotations

import json
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from webhooks.errors import InvalidPayload

#: The event types crossfill fulfills from; everything else is acknowledged and ignored.
HANDLED_TYPES = frozenset({
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
})


class _Data(Schema):
    class Meta:
        unknown = EXCLUDE

    object = fields.Dict(required=True)


class EventEnvelope(Schema):
    """The fields of a Stripe ``event`` crossfill relies on; other fields are excluded."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Regexp(r"^evt_[A-Za-z0-9_]{1,250}$",
                                                               error="must be an event id like evt_..."))
    object = fields.String(required=True, validate=validate.Equal("event"))
    type = fields.String(required=True, validate=validate.Length(min=1, max=200))
    created = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    livemode = fields.Boolean(required=True)
    data = fields.Nested(_Data, required=True)

    @validates_schema
    def _session_for_handled_types(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("type") not in HANDLED_TYPES:
            return
        session = data["data"]["object"]
        session_id = session.get("id")
        if session.get("object") != "checkout.session" or not (
            isinstance(session_id, str) and session_id.startswith("cs_") and len(session_id) <= 255
        ):
            raise ValidationError(
                "a checkout.session.* event must carry a checkout.session object with an id like cs_...",
                field_name="data.object",
            )


_SCHEMA = EventEnvelope()


def parse_event(body: bytes) -> dict[str, Any]:
    """Decode and validate a verified webhook body.

    Raises:
        InvalidPayload: when the body is not UTF-8 JSON or not a well-formed Stripe event,
            with the failing fields.
    """
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidPayload("the body is not valid UTF-8") from None
    except (ValueError, RecursionError) as error:
        raise InvalidPayload(f"the body is not valid JSON: {error}"[:300]) from None
    if not isinstance(document, dict):
        raise InvalidPayload(f"the body must be a JSON object, got {type(document).__name__}")
    try:
        return _SCHEMA.load(document)
    except ValidationError as error:
        raise InvalidPayload("the body is not a valid Stripe event", fields=error.messages_dict) from None
