"""Stripe API objects crossfill reads, validated with marshmallow into typed, frozen objects.

Unknown fields are excluded: Stripe adds fields often, and crossfill must not break on them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from fulfillment.crosssell import Price as RulePrice
from fulfillment.errors import InvalidResponse

PAID_STATUSES = frozenset({"paid", "no_payment_required"})


@dataclass(frozen=True)
class Price(RulePrice):
    """A price as the API returns it: the facts the cross-sell rules read, plus what an order shows."""

    product_name: str = ""
    unit_amount: int | None = None


@dataclass(frozen=True)
class LineItem:
    id: str
    price: Price
    quantity: int
    currency: str
    amount_subtotal: int
    amount_total: int
    amount_discount: int = 0
    amount_tax: int = 0
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    mode: str
    status: str
    payment_status: str
    currency: str | None
    amount_total: int | None
    automatic_tax: bool
    customer_email: str | None
    livemode: bool
    client_reference_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def is_fulfillable(self) -> bool:
        """Whether Stripe's guidance says to fulfill it: paid, or nothing to pay."""
        return self.payment_status in PAID_STATUSES


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE


class _Recurring(_Base):
    interval = fields.String(required=True, validate=validate.OneOf(["day", "week", "month", "year"]))
    interval_count = fields.Integer(load_default=1)


class PriceSchema(_Base):
    id = fields.String(required=True)
    product = fields.Raw(required=True)
    currency = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(["one_time", "recurring"]))
    unit_amount = fields.Integer(allow_none=True, load_default=None)
    tax_behavior = fields.String(allow_none=True, load_default="unspecified")
    recurring = fields.Nested(_Recurring, allow_none=True, load_default=None)

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> Price:
        product = data["product"]
        if isinstance(product, dict):  # expand[]=data.price.product
            product_id, product_name = product.get("id"), product.get("name") or ""
        else:
            product_id, product_name = product, ""
        if not isinstance(product_id, str) or not product_id:
            raise ValidationError("must be a product id or an expanded product", field_name="product")
        recurring = data.get("recurring") or {}
        return Price(id=data["id"], product=product_id, product_name=str(product_name),
                     currency=data["currency"].lower(), type=data["type"], unit_amount=data["unit_amount"],
                     tax_behavior=data["tax_behavior"] or "unspecified",
                     interval=recurring.get("interval"), interval_count=recurring.get("interval_count"))


class LineItemSchema(_Base):
    id = fields.String(required=True)
    object = fields.String(validate=validate.Equal("item"))
    price = fields.Nested(PriceSchema, required=True)
    quantity = fields.Integer(required=True, validate=validate.Range(min=0))
    currency = fields.String(required=True)
    amount_subtotal = fields.Integer(required=True)
    amount_total = fields.Integer(required=True)
    amount_discount = fields.Integer(load_default=0)
    amount_tax = fields.Integer(load_default=0)
    description = fields.String(allow_none=True, load_default="")
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> LineItem:
        data.pop("object", None)
        data["currency"] = data["currency"].lower()
        data["description"] = data["description"] or ""
        return LineItem(**data)


class LineItemListSchema(_Base):
    object = fields.String(required=True, validate=validate.Equal("list"))
    data = fields.List(fields.Nested(LineItemSchema), required=True)
    has_more = fields.Boolean(required=True)


class SessionSchema(_Base):
    id = fields.String(required=True)
    object = fields.String(validate=validate.Equal("checkout.session"))
    mode = fields.String(required=True, validate=validate.OneOf(["payment", "subscription", "setup"]))
    status = fields.String(allow_none=True, load_default=None)
    payment_status = fields.String(required=True,
                                   validate=validate.OneOf(["paid", "unpaid", "no_payment_required"]))
    currency = fields.String(allow_none=True, load_default=None)
    amount_total = fields.Integer(allow_none=True, load_default=None)
    automatic_tax = fields.Dict(load_default=dict)
    customer_details = fields.Dict(allow_none=True, load_default=None)
    customer_email = fields.String(allow_none=True, load_default=None)
    livemode = fields.Boolean(load_default=False)
    client_reference_id = fields.String(allow_none=True, load_default=None)
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)

    @pre_load
    def _nulls(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if not (key in ("automatic_tax", "metadata")
                                                                        and value is None)}
        return data

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> CheckoutSession:
        details = data.get("customer_details") or {}
        return CheckoutSession(
            id=data["id"], mode=data["mode"], status=data["status"] or "", payment_status=data["payment_status"],
            currency=(data["currency"] or None) and data["currency"].lower(), amount_total=data["amount_total"],
            automatic_tax=bool((data.get("automatic_tax") or {}).get("enabled")),
            customer_email=details.get("email") or data.get("customer_email"),
            livemode=data["livemode"], client_reference_id=data["client_reference_id"],
            metadata=data["metadata"],
        )


_SESSION, _LINE_ITEMS = SessionSchema(), LineItemListSchema()


def parse_session(document: Any) -> CheckoutSession:
    """Validate a Checkout Session from the API. Raises InvalidResponse naming the bad fields."""
    try:
        return _SESSION.load(document)
    except ValidationError as error:
        raise InvalidResponse(f"the Stripe API returned a malformed checkout.session: {error.messages}") from None


def parse_line_items(document: Any) -> tuple[list[LineItem], bool]:
    """Validate one page of line items. Returns the items and ``has_more``."""
    try:
        page = _LINE_ITEMS.load(document)
    except ValidationError as error:
        raise InvalidResponse(f"the Stripe API returned a malformed line item list: {error.messages}") from None
    return page["data"], page["has_more"]
