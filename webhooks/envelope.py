"""The Stripe event envelope, validated with marshmallow before anything is recorded."""
from __future__ import annotations

import json
import re
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from fulfillment.events import is_handled
from fulfillment.ids import ACCOUNT_ID, EVENT_ID, SESSION_ID
from webhooks.errors import InvalidPayload

#: Stripe's event types: dotted lowercase words (``checkout.session.completed``,
#: ``v1.billing.meter.no_meter_found``); ids are matched by fulfillment/ids.py.
EVENT_TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+){0,9}\Z")
MAX_TYPE_CHARS = 100
MAX_CREATED = 2**53  #: largest ``created`` accepted, unix seconds (the largest integer a JSON double holds)

#: A ``\uD800``-``\uDFFF`` escape in the raw body: the only way a surrogate gets into the decoded JSON
#: (strict UTF-8 decoding refuses encoded surrogates). Paired ones are fine; lone ones are checked for.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _Data(Schema):
    class Meta:
        unknown = EXCLUDE

    object = fields.Dict(required=True)


class EventEnvelope(Schema):
    """The fields of a Stripe ``event`` crossfill relies on; other fields are excluded."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Regexp(
        EVENT_ID, error="must be an event id like evt_... (letters, digits, _; at most 254 characters)"))
    object = fields.String(required=True, validate=validate.Equal("event"))
    type = fields.String(required=True, validate=[
        validate.Length(min=1, max=MAX_TYPE_CHARS),
        validate.Regexp(EVENT_TYPE, error="must be an event type like checkout.session.completed "
                                          "(dotted lowercase words)")])
    created = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_CREATED))
    livemode = fields.Boolean(required=True)
    data = fields.Nested(_Data, required=True)
    #: The connected account a Connect event comes from; None for the platform's own events.
    account = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        ACCOUNT_ID, error="must be a connected account id like acct_... (letters, digits, _; at most 255 characters)"))

    @validates_schema
    def _session_for_handled_types(self, data: dict[str, Any], **_: Any) -> None:
        if not is_handled(str(data.get("type"))):
            return
        session = data["data"]["object"]
        session_id = session.get("id")
        if session.get("object") != "checkout.session" or not (
            isinstance(session_id, str) and SESSION_ID.match(session_id)
        ):
            raise ValidationError(
                "a checkout.session.* event must carry a checkout.session object with an id like cs_... "
                "(letters, digits, _; at most 253 characters)",
                field_name="data.object",
            )


_SCHEMA = EventEnvelope()


def parse_event(body: bytes) -> dict[str, Any]:
    """Decode and validate a verified webhook body.

    Everything the result holds can be stored and shown as UTF-8: a body whose JSON decodes to a
    lone surrogate (``"\\udfff"``), anywhere in the document, is refused, as are duplicate keys
    (which value counts would depend on the parser) and ``NaN``/``Infinity`` (not JSON).

    Raises:
        InvalidPayload: when the body is not UTF-8 JSON or not a well-formed Stripe event,
            with the failing fields.
    """
    return load_event(decode(body))


def load_event(document: dict[str, Any]) -> dict[str, Any]:
    """Validate a decoded snapshot event (see :func:`parse_event`).

    Raises:
        InvalidPayload: with the failing fields.
    """
    try:
        return _SCHEMA.load(document)
    except ValidationError as error:
        raise InvalidPayload("the body is not a valid Stripe event", fields=error.messages_dict) from None


def decode(body: bytes) -> dict[str, Any]:
    """Decode a verified body to a JSON object, refusing what :func:`parse_event` says it refuses.

    Raises:
        InvalidPayload: when the body is not UTF-8 JSON holding an object.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidPayload(f"the body is not valid UTF-8 (byte {error.start}: {error.reason}); "
                             "Stripe sends UTF-8 JSON") from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidPayload(f"the body is not valid JSON: {error}"[:300]) from None
    if _SURROGATE_ESCAPE.search(body):
        _refuse_lone_surrogates(document)
    if not isinstance(document, dict):
        raise InvalidPayload(f"the body must be a JSON object, got {type(document).__name__}")
    return document


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"the key {ascii(repeated[:50])} appears twice in one object")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _refuse_lone_surrogates(document: Any) -> None:
    """Refuse *document* when one of its strings (keys included) cannot be encoded to UTF-8."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload("the body holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its "
                             "pair); that is not text, so it cannot be stored or shown") from None
    except RecursionError:
        raise InvalidPayload("the body is nested too deeply to be checked") from None
