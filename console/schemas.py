"""The JSON API's shapes (marshmallow): what it accepts and what it answers, and its OpenAPI document.

An order's and an item's schemas are derived from their records (fulfillment/records.py), field by
field: a field added there is in the API, and documented, without a line here.
"""
from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, date, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_dump, validate

from fulfillment.ids import ACCOUNT_ID, SESSION_ID
from fulfillment.liveness import ALIVE_WITHIN_S
from fulfillment.records import API, ORDER_STATUSES, Order, OrderItem


def documented_pattern(pattern: re.Pattern[str]) -> str:
    """An id pattern (Python's, ending in ``\\Z``) as OpenAPI writes it: anchored with ``^`` and ``$``."""
    return "^" + pattern.pattern.removesuffix("\\Z") + "$"


ACCOUNT_PATTERN = documented_pattern(ACCOUNT_ID)  #: a connected account id, in the OpenAPI document
SESSION_PATTERN = documented_pattern(SESSION_ID)  #: a Checkout Session id, in the OpenAPI document
_RELATIVE = re.compile(r"^(\d{1,5})([dhm])$")
_UNITS_S = {"d": 86_400, "h": 3600, "m": 60}


class Moment(fields.Field):
    """A point in time given as ``30d``/``12h``/``15m`` ago, an ISO date or date-time, or unix seconds."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        return parse_moment(str(value))

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def parse_moment(raw: str, *, now: float | None = None) -> float:
    """Unix seconds for *raw* (see :class:`Moment`).

    Raises:
        ValidationError: naming the forms accepted.
    """
    try:
        seconds = _seconds(raw.strip(), now)
        datetime.fromtimestamp(seconds, UTC)  # nan, inf and moments past year 9999 name no day
    except (ValueError, OverflowError, OSError):
        raise ValidationError(
            f"not a time: {raw!r}; use 30d / 12h / 15m (ago), 2026-11-30, 2026-11-30T08:00:00Z or unix seconds"
        ) from None
    return seconds


def _seconds(text: str, now: float | None) -> float:
    relative = _RELATIVE.match(text)
    if relative:
        return (time.time() if now is None else now) - int(relative[1]) * _UNITS_S[relative[2]]
    try:
        return float(text)
    except ValueError:
        pass
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class ErrorBody(Schema):
    type = fields.String(required=True, metadata={"description": "unauthorized, forbidden, not_found, ..."})
    message = fields.String(required=True)
    problems = fields.Dict(data_key="fields", metadata={"description": "per-parameter problems (invalid_request)"})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBody, required=True)


#: The API field of each record field's annotation (``X | None`` also allows null), given its keywords.
_FIELD_TYPES: dict[str, Callable[..., fields.Field]] = {
    "str": fields.String,
    "int": fields.Integer,
    "float": fields.Float,
    "bool": fields.Boolean,
    "Any": fields.Raw,
    "tuple[str, ...]": lambda **keywords: fields.List(fields.String(), **keywords),
    "tuple[dict[str, Any], ...]": lambda **keywords: fields.List(fields.Dict(), **keywords),
}


class RecordSchema(Schema):
    """A schema of a record: dumps the record as its ``to_dict()`` shows it (optional facts it does
    not have stay out of the answer, as they are out of ``crossfill order --json``)."""

    @pre_dump
    def _as_shown(self, value: Any, **kwargs: Any) -> Any:
        return value.to_dict() if isinstance(value, (Order, OrderItem)) else value


def record_schema(record: type, name: str, *, nested: Mapping[str, type[Schema]] | None = None,
                  exclude: Collection[str] = ()) -> type[Schema]:
    """A schema called *name* with a field per field of the dataclass *record*.

    Each field's kind comes from its annotation (:data:`_FIELD_TYPES`; *nested* maps an annotation
    such as ``tuple[OrderItem, ...]`` to the schema of its elements), ``allow_none`` from ``| None``
    (and ``Any``), and the rest from the field's ``api`` metadata; a field whose ``api`` is None is
    left out, as are those in *exclude*.
    """
    declared: dict[str, fields.Field] = {}
    for one in dataclasses.fields(record):
        options = one.metadata.get(API, {})
        if options is None or one.name in exclude:
            continue
        annotation = str(one.type)
        kind = annotation.removesuffix(" | None")
        keywords: dict[str, Any] = {"allow_none": True} if kind != annotation or kind == "Any" else {}
        keywords.update(options)
        if nested and kind in nested:
            declared[one.name] = fields.List(fields.Nested(nested[kind]), **keywords)
        elif kind in _FIELD_TYPES:
            declared[one.name] = _FIELD_TYPES[kind](**keywords)
        else:
            raise TypeError(f"{record.__name__}.{one.name}: no API field for {annotation!r}; add it to _FIELD_TYPES")
    return RecordSchema.from_dict(declared, name=name)


ItemSchema = record_schema(OrderItem, "ItemSchema")
OrderSummarySchema = record_schema(Order, "OrderSummarySchema", exclude=("items",))
OrderSchema = record_schema(Order, "OrderSchema", nested={"tuple[OrderItem, ...]": ItemSchema})


class OrderListQuery(Schema):
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))
    since = Moment(metadata={"description": "created at or after: 30d, 2026-11-01, ISO date-time, unix s",
                             "type": "string"})
    until = Moment(metadata={"description": "created at or before", "type": "string"})
    product = fields.String(validate=validate.Length(1, 255), metadata={"description": "has an item of it"})
    cross_sell = fields.Boolean(metadata={"description": "took a cross-sell (true) or not (false)"})
    account = fields.String(validate=validate.Regexp(ACCOUNT_ID, error="must be a connected account id like acct_1A2b..."),
                            metadata={"pattern": ACCOUNT_PATTERN})
    cursor = fields.String(validate=validate.Length(1, 400), metadata={"description": "next_cursor of a page"})
    limit = fields.Integer(load_default=25, validate=validate.Range(1, 100))


class OrderPageSchema(Schema):
    data = fields.List(fields.Nested(OrderSummarySchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})


class FulfilSchema(Schema):
    session_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "the order's status now"})
    dispatched = fields.Integer(required=True, metadata={"description": "items queued by this call"})
    order = fields.Nested(OrderSchema, allow_none=True)


class OldestUnfulfilledSchema(Schema):
    session_id = fields.String(required=True)
    paid_at = fields.Float(required=True, metadata={"description": "unix seconds: the paying event's created"})
    age_s = fields.Float(required=True)
    late = fields.Boolean(required=True, metadata={"description": "waiting longer than the lateness alert's 5 min"})


class LatenessSchema(Schema):
    lag_p50_s = fields.Float(allow_none=True, required=True, metadata={"description": "paid → item done, last hour"})
    lag_p99_s = fields.Float(allow_none=True, required=True)
    items_done_last_hour = fields.Integer(required=True)
    oldest_unfulfilled = fields.Nested(OldestUnfulfilledSchema, allow_none=True, required=True,
                                       metadata={"description": "the paid order waiting longest; null: none"})


class StatusSchema(Schema):
    queues = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    workers = fields.List(fields.String(), required=True,
                          metadata={"description": f"heartbeat within {ALIVE_WITHIN_S:.0f} s"})
    dead_letters = fields.Integer(required=True)
    inbox = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    orders = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    reconcile_last_success = fields.Float(allow_none=True, required=True)
    lateness = fields.Nested(LatenessSchema, required=True)


class DeadLetterSchema(Schema):
    id = fields.String(required=True)
    task = fields.String(required=True)
    args = fields.List(fields.String(), required=True)
    error = fields.String(required=True)
    reason = fields.String(required=True)
    attempts = fields.Integer(required=True)
    first_failed_at = fields.Float()
    failed_at = fields.Float()


class DeadLetterListSchema(Schema):
    data = fields.List(fields.Nested(DeadLetterSchema), required=True)


class ReplaySchema(Schema):
    id = fields.String(required=True)
    outcome = fields.String(required=True)


class ReplayAllSchema(Schema):
    data = fields.List(fields.Nested(ReplaySchema), required=True)


class EventSchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True)
    session_id = fields.String(allow_none=True)
    status = fields.String(required=True)
    received_at = fields.Float()
    deliveries = fields.Integer()
    account = fields.String(allow_none=True)
    livemode = fields.Boolean(allow_none=True)


class ReconcileSchema(Schema):
    task_id = fields.String(required=True)
    outcome = fields.String(required=True)


class ReportQuery(Schema):
    since = Moment(load_default=None, metadata={"description": "first day: 30d (default), 2026-11-01, ...",
                                                "type": "string"})
    account = fields.String(validate=validate.Regexp(ACCOUNT_ID, error="must be a connected account id like acct_1A2b..."),
                            metadata={"pattern": ACCOUNT_PATTERN})


class ReportRowSchema(Schema):
    account = fields.String(required=True)
    product = fields.String(required=True)
    cross_sell = fields.String(allow_none=True, metadata={"description": "the product cross-sold"})
    paid_orders = fields.Integer(required=True)
    orders_with_cross_sell = fields.Integer(required=True)
    attach_rate = fields.Float(required=True, metadata={"description": "orders_with_cross_sell / paid_orders"})
    cross_sell_revenue = fields.Dict(keys=fields.String(), values=fields.Integer(),
                                     metadata={"description": "minor units, per currency"})
    average_order_value_with = fields.Dict(keys=fields.String(), values=fields.Float())
    average_order_value_without = fields.Dict(keys=fields.String(), values=fields.Float())


class ReportSchema(Schema):
    since = fields.String(required=True, metadata={"description": "first day included (UTC)"})
    until = fields.String(required=True, metadata={"description": "last day included (UTC)"})
    rows = fields.List(fields.Nested(ReportRowSchema), required=True)
    anomalies = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class AuditEntrySchema(Schema):
    id = fields.String(required=True)
    at = fields.Float(required=True)
    who = fields.String(required=True)
    role = fields.String(required=True)
    action = fields.String(required=True)
    target = fields.String(required=True)
    result = fields.String(required=True)
    account = fields.String(metadata={"description": "the order's account, for an action on an order"})


class AuditListSchema(Schema):
    data = fields.List(fields.Nested(AuditEntrySchema), required=True)


class EndSessionsSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the token's name"})
    ended = fields.Integer(required=True, metadata={"description": "sessions that were live and are now ended"})
