"""Stripe API objects crossfill reads, validated with marshmallow into typed, frozen objects.

A tolerant reader (Postel): only the fields crossfill uses are read; unknown fields are excluded
at every level; wherever Stripe's types for the pinned API version allow null, null is accepted
(``tests/fixtures/stripe/fields.json`` lists them); values of Stripe's open enums (``mode``,
``payment_status``, ``status``, price ``type``, ``tax_behavior``, ``recurring.interval``) are kept
as strings, whatever new value Stripe adds. What crossfill cannot work with fails as narrowly as
it can: a line item without a usable price fails that item alone (:attr:`LineItem.problem`), never
its page or its order; only a document that is not the object at all is an :class:`InvalidResponse`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from fulfillment.crosssell import Price as RulePrice
from fulfillment.errors import InvalidResponse

#: ``payment_status`` values Stripe's fulfillment guide says to fulfill.
PAID_STATUSES = frozenset({"paid", "no_payment_required"})
#: every ``payment_status`` the pinned API version names; anything else is new, and not fulfilled.
PAYMENT_STATUSES = frozenset({*PAID_STATUSES, "unpaid"})


@dataclass(frozen=True)
class Price(RulePrice):
    """A price as the API returns it: the facts the cross-sell rules read, plus what an order shows."""

    product_name: str = ""
    unit_amount: int | None = None


@dataclass(frozen=True)
class LineItem:
    """One line item; ``price`` is None exactly when ``problem`` says why crossfill cannot classify it."""

    id: str
    price: Price | None
    quantity: int | None  #: Stripe's types allow null
    currency: str
    amount_subtotal: int
    amount_total: int
    description: str = ""
    problem: str | None = None  #: why this item cannot be fulfilled (no price, no product, malformed)


@dataclass(frozen=True)
class LineItemPage:
    """The first page of a session's line items, embedded when ``line_items`` was expanded."""

    items: tuple[LineItem, ...]
    has_more: bool


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    mode: str  #: payment, subscription, setup — or a mode newer than crossfill
    status: str
    payment_status: str
    currency: str | None
    amount_total: int | None
    automatic_tax: bool
    customer_email: str | None
    livemode: bool
    client_reference_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: The first page of line items when the API embedded them (``expand[]=line_items…``), else None.
    line_items: LineItemPage | None = field(default=None, compare=False)

    @property
    def is_fulfillable(self) -> bool:
        """Whether Stripe's guidance says to fulfill it: paid, or nothing to pay. Fails safe: a
        payment status newer than crossfill is not fulfillable."""
        return self.payment_status in PAID_STATUSES

    @property
    def has_unknown_payment_status(self) -> bool:
        """Whether Stripe sent a ``payment_status`` the pinned API version does not name."""
        return self.payment_status not in PAYMENT_STATUSES


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE


def _text(**kwargs: Any) -> fields.String:
    """A string field that may be null or absent (read as None)."""
    return fields.String(allow_none=True, load_default=None, **kwargs)


class _Recurring(_Base):
    interval = fields.String(required=True)  # open enum: day, week, month, year, or newer
    interval_count = fields.Integer(allow_none=True, load_default=1, validate=validate.Range(min=1))


class PriceSchema(_Base):
    id = fields.String(required=True)
    product = fields.Raw(allow_none=True, load_default=None)  # an id, a product, or a deleted product
    currency = fields.String(required=True)
    type = fields.String(required=True)  # open enum: one_time, recurring, or newer
    unit_amount = fields.Integer(allow_none=True, load_default=None)
    tax_behavior = _text()  # open enum: inclusive, exclusive, unspecified, or newer; null = unspecified
    recurring = fields.Nested(_Recurring, allow_none=True, load_default=None)

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> Price:
        product = data["product"]
        if isinstance(product, dict):  # expanded (expand[]=…price.product), possibly a deleted product
            product_id, product_name = product.get("id"), product.get("name") or ""
        else:
            product_id, product_name = product, ""
        if not isinstance(product_id, str) or not product_id:
            raise ValidationError(f"no product (got {_shown(product)})", field_name="product")
        recurring = data["recurring"] or {}
        return Price(id=data["id"], product=product_id, product_name=str(product_name),
                     currency=data["currency"].lower(), type=data["type"], unit_amount=data["unit_amount"],
                     tax_behavior=data["tax_behavior"] or "unspecified",
                     interval=recurring.get("interval"), interval_count=recurring.get("interval_count"))


class LineItemSchema(_Base):
    id = fields.String(required=True)
    object = fields.String(validate=validate.Equal("item"))
    quantity = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=0))
    currency = fields.String(required=True)
    amount_subtotal = fields.Integer(allow_none=True, load_default=0)
    amount_total = fields.Integer(required=True)
    description = _text()
    # ``price`` is read apart (see parse_item): a missing or malformed price fails the item, not the page.


_PRICE, _ITEM = PriceSchema(), LineItemSchema()


def parse_item(document: Any, *, position: int = 0) -> LineItem:
    """Read one line item. Anything wrong with it but its id goes in :attr:`LineItem.problem`.

    Raises:
        InvalidResponse: the element has no id (so nothing can be recorded about it).
    """
    item_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(item_id, str) or not item_id:
        raise InvalidResponse(f"the Stripe API returned a line item list whose element {position} has no id: "
                              f"{_shown(document)}")
    try:
        data = _ITEM.load(document)
    except ValidationError as error:
        return _unusable(item_id, document, f"malformed line item: {error.messages}")
    price_document = document.get("price")
    if price_document is None:
        return _unusable(item_id, document, "the line item has no price")
    try:
        price = _PRICE.load(price_document)
    except ValidationError as error:
        return _unusable(item_id, document, f"the line item's price is unusable: {error.messages}")
    return LineItem(id=item_id, price=price, quantity=data["quantity"], currency=data["currency"].lower(),
                    amount_subtotal=data["amount_subtotal"] or 0, amount_total=data["amount_total"],
                    description=data["description"] or "")


def _unusable(item_id: str, document: dict[str, Any], problem: str) -> LineItem:
    """The item as far as it can be shown (what it cost, in which currency) with why it cannot be fulfilled."""
    currency, quantity = document.get("currency"), document.get("quantity")
    total, description = document.get("amount_total"), document.get("description")
    return LineItem(id=item_id, price=None, quantity=quantity if _is_int(quantity) else None,
                    currency=currency.lower() if isinstance(currency, str) else "", amount_subtotal=0,
                    amount_total=total if isinstance(total, int) and not isinstance(total, bool) else 0,
                    description=description if isinstance(description, str) else "", problem=problem)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class LineItemListSchema(_Base):
    object = fields.String(required=True, validate=validate.Equal("list"))
    data = fields.List(fields.Raw(), required=True)
    has_more = fields.Boolean(required=True)


class _AutomaticTax(_Base):
    enabled = fields.Boolean(allow_none=True, load_default=False)


class _CustomerDetails(_Base):
    email = _text()


class SessionSchema(_Base):
    id = fields.String(required=True)
    object = fields.String(validate=validate.Equal("checkout.session"))
    mode = fields.String(required=True)  # open enum
    status = _text()  # open enum, nullable
    payment_status = fields.String(required=True)  # open enum: an unknown value is not fulfillable
    currency = _text()
    amount_total = fields.Integer(allow_none=True, load_default=None)
    automatic_tax = fields.Nested(_AutomaticTax, allow_none=True, load_default=None)
    customer_details = fields.Nested(_CustomerDetails, allow_none=True, load_default=None)
    customer_email = _text()
    livemode = fields.Boolean(load_default=False)
    client_reference_id = _text()
    metadata = fields.Raw(allow_none=True, load_default=None)
    line_items = fields.Raw(allow_none=True, load_default=None)  # only when expanded; read by _embedded

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> CheckoutSession:
        details = data["customer_details"] or {}
        metadata = data["metadata"] if isinstance(data["metadata"], dict) else {}
        return CheckoutSession(
            id=data["id"], mode=data["mode"], status=data["status"] or "", payment_status=data["payment_status"],
            currency=(data["currency"] or None) and data["currency"].lower(), amount_total=data["amount_total"],
            automatic_tax=bool((data["automatic_tax"] or {}).get("enabled")),
            customer_email=details.get("email") or data["customer_email"],
            livemode=data["livemode"], client_reference_id=data["client_reference_id"],
            metadata={str(key): value for key, value in metadata.items() if isinstance(value, str)},
            line_items=_embedded(data["line_items"]),
        )


_SESSION, _LINE_ITEMS = SessionSchema(), LineItemListSchema()


def parse_session(document: Any) -> CheckoutSession:
    """Validate a Checkout Session from the API. Raises InvalidResponse naming the bad fields."""
    try:
        return _SESSION.load(document)
    except ValidationError as error:
        raise InvalidResponse(f"the Stripe API returned a malformed checkout.session: {error.messages}") from None


def _embedded(document: Any) -> LineItemPage | None:
    """The embedded first page of line items; None when absent or unreadable (the list endpoint then
    reads them, and reports what is wrong with them there)."""
    if document is None:
        return None
    try:
        items, has_more = parse_line_items(document)
    except InvalidResponse:
        return None
    return LineItemPage(tuple(items), has_more)


def parse_line_items(document: Any) -> tuple[list[LineItem], bool]:
    """Validate one page of line items. Returns the items (some may carry a problem) and ``has_more``.

    Raises:
        InvalidResponse: the document is not a list object, or an element has no id.
    """
    try:
        page = _LINE_ITEMS.load(document)
    except ValidationError as error:
        raise InvalidResponse(f"the Stripe API returned a malformed line item list: {error.messages}") from None
    return [parse_item(item, position=number) for number, item in enumerate(page["data"])], page["has_more"]


def _shown(value: Any) -> str:
    """A short repr for error messages (a whole object would flood the ledger and the logs)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
