"""crossfill's records: an order, its line items and a received event, each defined once.

They are frozen dataclasses. The ledger and the inbox return them, handlers receive them, and every
shape derived from them — what the ledger stores in Redis, the JSON of ``crossfill order --json``,
the body of the ``http`` handler, the console's API schemas — comes from these fields and the
conversions below, so a field is added here and nowhere else.

Reading is tolerant (records stored by an older crossfill are read back): a field missing from a
stored mapping takes its default and keys no field names are ignored. This module is a leaf: it
imports nothing from crossfill.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

ORDER_STATUSES = ("awaiting_payment", "payment_failed", "expired", "fulfilling", "fulfilled", "partially_failed")

#: Field metadata key: keyword arguments of the field in the console's API schema (``required``,
#: ``allow_none``, ``metadata``), or None to keep the field out of the API.
API = "api"


def api(**options: Any) -> dict[str, Any]:
    """Metadata for a record field: how the console's API schema declares it (see :data:`API`)."""
    return {API: options}


_R = TypeVar("_R", bound="_Record")


class _Record:
    """Shared conversions, and read-only access by field name.

    ``record["product"]``, ``record.get("product")`` and ``"account" in record`` read the record as
    the dict it replaces did (an optional fact it does not have is not in it): handlers registered
    through entry points, and callers not yet moved to attributes, were written against that dict.
    """

    #: Fields left out of :meth:`to_dict` while they are None (optional facts, absent from stored JSON then).
    _OMIT_WHEN_NONE: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Any:
        if name not in _names(type(self)):
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in _names(type(self)) else default

    def __contains__(self, name: object) -> bool:
        return name in _names(type(self)) and not (name in self._OMIT_WHEN_NONE and getattr(self, str(name)) is None)

    def __iter__(self) -> Iterator[str]:
        return (one.name for one in dataclasses.fields(self) if one.name in self)  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls: type[_R], data: Mapping[str, Any], **overrides: Any) -> _R:
        """The record from a mapping of its field names (stored JSON, a ``to_dict()``); *overrides* win."""
        known = _names(cls)
        values = {name: value for name, value in data.items() if name in known}
        values.update(overrides)
        for one in dataclasses.fields(cls):  # type: ignore[arg-type]
            if one.name in values and _is_sequence(one.type):
                values[one.name] = tuple(values[one.name] or ())
        return cls(**values)

    def _pairs(self, names: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        for name in names:
            value = getattr(self, name)
            if value is None and name in self._OMIT_WHEN_NONE:
                continue
            yield name, list(value) if isinstance(value, tuple) else value


def _names(cls: type) -> frozenset[str]:
    return frozenset(one.name for one in dataclasses.fields(cls))


def _is_sequence(annotation: object) -> bool:
    return str(annotation).startswith("tuple[")


@dataclass(frozen=True)
class OrderItem(_Record):
    """One line item of an order: what was bought (classified), and where its fulfillment stands."""

    id: str = field(metadata=api(required=True))
    position: int = 0  #: its place among the session's line items
    product: str | None = None  #: None for an item crossfill could not classify
    product_name: str | None = ""
    price: str | None = None
    description: str | None = None
    quantity: int | None = None
    currency: str | None = None
    amount_total: int | None = None
    cross_sell: bool = field(default=False, metadata=api(required=True))
    cross_sold_by: str | None = None  #: the product whose cross-sell this item is
    anomalies: tuple[str, ...] = ()  #: rules Stripe enforces on offers that this cross-sell breaks
    handler: str | None = None
    #: Why the item cannot be fulfilled (no usable price or product); stored, never shown by the API.
    problem: str | None = field(default=None, metadata={API: None})
    # The ledger's state of the item.
    status: str = field(default="", metadata=api(
        required=True, metadata={"description": "pending, in_progress, done or failed"}))
    attempts: int = 0
    result: Any = None  #: what the handler returned, when done
    error: str | None = None  #: the recorded error (failed), or the last one (given back for a retry)
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None

    _OMIT_WHEN_NONE = ("problem",)
    #: What the ledger stores for the item when it opens the order (the rest is its state).
    STORED = ("id", "position", "product", "product_name", "price", "description", "quantity", "currency",
              "amount_total", "cross_sell", "cross_sold_by", "anomalies", "handler", "problem")

    def stored(self) -> dict[str, Any]:
        """The item as the ledger stores it (its classification, without state)."""
        return dict(self._pairs(self.STORED))

    def to_dict(self) -> dict[str, Any]:
        """The item as JSON shows it: classification, then state."""
        return dict(self._pairs(tuple(one.name for one in dataclasses.fields(self))))


@dataclass(frozen=True)
class Order(_Record):
    """An order (one Checkout Session): its summary, the ledger's state of it, and its items.

    An order read without its items (what a handler is told, :meth:`summary`) has ``items == ()``
    and, when read that way, no state either.
    """

    session_id: str = field(metadata=api(required=True))
    status: str = field(default="", metadata=api(required=True, metadata={"description": " | ".join(ORDER_STATUSES)}))
    created_at: float | None = None
    updated_at: float | None = None
    mode: str | None = None
    payment_status: str | None = None
    currency: str | None = None
    amount_total: int | None = None
    customer: str | None = field(default=None, metadata=api(metadata={"description": "masked: j***@example.com"}))
    client_reference_id: str | None = None
    livemode: bool | None = None
    item_count: int = 0
    cross_sell_count: int = 0
    #: ``{"item": id, "anomalies": [...]}`` for each item flagged with anomalies.
    anomalies: tuple[dict[str, Any], ...] = ()
    #: The connected account the order belongs to; None for the platform's own.
    account: str | None = field(default=None, metadata=api(metadata={"description": "connected account, for platforms"}))
    items: tuple[OrderItem, ...] = field(default=(), metadata=api(required=True))

    _OMIT_WHEN_NONE = ("account",)
    #: What the ledger stores as the order's summary (the rest is its key, state and items).
    STORED = ("mode", "payment_status", "currency", "amount_total", "customer", "client_reference_id", "livemode",
              "item_count", "cross_sell_count", "anomalies", "account")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], **overrides: Any) -> Order:
        """The order from a mapping of its field names; ``items`` may hold mappings or items."""
        items = overrides.pop("items", data.get("items") or ())
        order = super().from_mapping(data, **overrides)
        return dataclasses.replace(order, items=tuple(
            item if isinstance(item, OrderItem) else OrderItem.from_mapping(item) for item in items))

    def stored(self) -> dict[str, Any]:
        """The order's summary as the ledger stores it."""
        return dict(self._pairs(self.STORED))

    def summary(self) -> dict[str, Any]:
        """The order as a handler is told about it: its session id and summary, no items."""
        return {"session_id": self.session_id, **self.stored()}

    def to_dict(self) -> dict[str, Any]:
        """The order as JSON shows it (``crossfill order --json``, the order API): state, summary, items."""
        return {**dict(self._pairs(("session_id", "status", "created_at", "updated_at"))), **self.stored(),
                "items": [item.to_dict() for item in self.items]}


@dataclass(frozen=True)
class InboxEvent:
    """One event as the inbox holds it."""

    id: str
    type: str
    session_id: str
    status: str
    body: str
    received_at: float
    deliveries: int
    #: The connected account (``acct_...``) a Connect event came from; None for the platform's own.
    account: str | None = None
    #: Why an ``ignored`` event was ignored (``unhandled_type``, ``livemode_mismatch``, ``twin``), else "".
    reason: str = ""
    #: The event's ``livemode`` as Stripe sent it; None when it did not say.
    livemode: bool | None = None
    #: For an event ignored as a ``twin``: the id of its twin, recorded first and processed instead.
    twin: str | None = None
    #: Until when (unix seconds) a batch holds the event (it took it with other events), else 0.
    batch_until: float = 0.0
    #: A batch claimed it but no page it read held its session: it is read alone from now on.
    read_alone: bool = False

    @property
    def created(self) -> float | None:
        """When Stripe created the event (unix seconds; a thin event's RFC 3339 ``created`` too), or
        None when the body does not say (read once, for the order's ``paid_at``)."""
        try:
            value = json.loads(self.body).get("created") if self.body else None
            if isinstance(value, str):
                return datetime.fromisoformat(value).timestamp()
        except (ValueError, AttributeError):
            return None
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def livemode_of(body: str) -> bool | None:
    """An event body's ``livemode`` (None when the body does not say); how events stored before the
    inbox kept it as a field are read."""
    try:
        value = json.loads(body).get("livemode") if body else None
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None
