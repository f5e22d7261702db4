"""The simulator's objects and their Stripe JSON shapes, pure.

Records are mutable dataclasses owned by :class:`simulator.store.Store` (and only touched under
its lock); the ``*_json`` functions render them exactly as Stripe's API returns them.
"""
from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fulfillment.crosssell import Offer, Price, Refusal

_ALPHABET = string.ascii_letters + string.digits
#: random bytes → id letters in one C call (a few letters come up 5 times in 256 instead of 4: ids
#: need to be unique and unguessable enough for a simulator, not uniform)
_BYTE_TO_LETTER = bytes.maketrans(bytes(range(256)), (_ALPHABET * 5)[:256].encode("ascii"))

MODES = ("payment", "subscription", "setup")  #: a Checkout Session's ``mode``
INTERVALS = ("day", "week", "month", "year")  #: a recurring price's ``recurring.interval``
SESSION_STATUSES = ("open", "complete", "expired")  #: a Checkout Session's ``status``
ACCOUNT_TYPES = ("standard", "express", "custom")  #: a connected account's ``type``
#: How a simulated buyer's payment ends (``/sim/checkout/sessions/{id}/complete``).
OUTCOMES = ("paid", "no_payment_required", "async_pending", "async_succeeded", "async_failed")


def new_id(prefix: str, length: int = 24) -> str:
    """A random id with Stripe's *prefix* (``prod_``, ``price_``, ``cs_test_``, ``li_``, ``evt_``, ...)."""
    return prefix + secrets.token_bytes(length).translate(_BYTE_TO_LETTER).decode("ascii")


@dataclass
class ProductRecord:
    """A product."""

    id: str
    name: str
    created: int
    active: bool = True
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    updated: int = 0
    livemode: bool = False


@dataclass
class PriceRecord:
    """A price of a product."""

    id: str
    product: str
    currency: str
    unit_amount: int
    created: int
    type: str = "one_time"
    interval: str | None = None
    interval_count: int | None = None
    tax_behavior: str = "unspecified"
    active: bool = True
    nickname: str | None = None
    lookup_key: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    livemode: bool = False

    def facts(self, product_active: bool = True) -> Price:
        """The price as the cross-sell rules see it (an archived product's prices count as inactive)."""
        return Price(id=self.id, product=self.product, currency=self.currency, type=self.type,
                     interval=self.interval, interval_count=self.interval_count,
                     tax_behavior=self.tax_behavior, active=self.active and product_active)


@dataclass
class LineItemRecord:
    """One line of a Checkout Session."""

    id: str
    price: str
    quantity: int
    cross_sell: bool = False  #: added by the buyer from the session's cross-sell offer


@dataclass
class SessionRecord:
    """A Checkout Session, with the cross-sell decision taken when it was created."""

    id: str
    created: int
    expires_at: int
    mode: str
    currency: str | None
    line_items: list[LineItemRecord]
    url: str
    automatic_tax: bool = False
    subscription_upsells: bool = False
    default_tax_behavior: str = "unspecified"
    status: str = "open"
    payment_status: str = "unpaid"
    metadata: dict[str, str] = field(default_factory=dict)
    client_reference_id: str | None = None
    customer_email: str | None = None
    customer_name: str | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    payment_intent: str | None = None
    subscription: str | None = None
    offer: Offer | None = None
    refusals: tuple[Refusal, ...] = ()
    livemode: bool = False

    @property
    def cross_sell_item(self) -> LineItemRecord | None:
        """The cross-sell line item the buyer added, if any."""
        return next((item for item in self.line_items if item.cross_sell), None)


@dataclass
class EndpointRecord:
    """A webhook endpoint and its signing secrets (newest first; an old one until it expires)."""

    id: str
    url: str
    enabled_events: list[str]
    created: int
    secrets: list[tuple[str, float | None]]  #: (secret, unix time it stops signing or None)
    status: str = "enabled"
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    api_version: str | None = None
    connect: bool = False  #: receives the events of the platform's connected accounts (only those)
    livemode: bool = False

    def active_secrets(self, now: float) -> list[str]:
        """The secrets that sign deliveries at *now*."""
        return [secret for secret, expires in self.secrets if expires is None or expires > now]

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint receives events of *event_type*."""
        return self.status == "enabled" and ("*" in self.enabled_events or event_type in self.enabled_events)


def product_json(product: ProductRecord) -> dict[str, Any]:
    """A product object."""
    return {
        "id": product.id, "object": "product", "active": product.active, "created": product.created,
        "default_price": None, "description": product.description, "images": [], "livemode": product.livemode,
        "marketing_features": [], "metadata": dict(product.metadata), "name": product.name,
        "package_dimensions": None, "shippable": None, "statement_descriptor": None, "tax_code": None,
        "tax_details": None, "type": "service", "unit_label": None, "updated": product.updated or product.created,
        "url": None,
    }


def price_json(price: PriceRecord, product: dict[str, Any] | None = None) -> dict[str, Any]:
    """A price object; *product* given means ``product`` is expanded."""
    recurring = None
    if price.type == "recurring":
        recurring = {"interval": price.interval, "interval_count": price.interval_count or 1,
                     "meter": None, "trial_period_days": None, "usage_type": "licensed"}
    return {
        "id": price.id, "object": "price", "active": price.active, "billing_scheme": "per_unit",
        "created": price.created, "currency": price.currency, "custom_unit_amount": None,
        "livemode": price.livemode, "lookup_key": price.lookup_key, "metadata": dict(price.metadata),
        "nickname": price.nickname, "product": product if product is not None else price.product,
        "recurring": recurring, "tax_behavior": price.tax_behavior, "tiers_mode": None,
        "transform_quantity": None, "type": price.type, "unit_amount": price.unit_amount,
        "unit_amount_decimal": str(price.unit_amount),
    }


def line_item_json(item: LineItemRecord, price: PriceRecord, product: ProductRecord,
                   price_body: dict[str, Any]) -> dict[str, Any]:
    """A Checkout line item (``object: item``) whose price renders as *price_body*."""
    subtotal = price.unit_amount * item.quantity
    return {
        "id": item.id, "object": "item", "adjustable_quantity": None,
        "amount_discount": 0, "amount_subtotal": subtotal, "amount_tax": 0, "amount_total": subtotal,
        "currency": price.currency, "description": product.name, "metadata": {},
        "price": price_body, "quantity": item.quantity,
    }


def session_json(session: SessionRecord, amount_of: Callable[[LineItemRecord], int]) -> dict[str, Any]:
    """A Checkout Session object, without ``line_items`` (Stripe includes them only when expanded).

    Every field the pinned API version always sends is here, with what a hosted, card-only
    session without shipping, discounts, custom fields or consent collection carries.
    """
    amount = sum(amount_of(item) for item in session.line_items)
    details: dict[str, Any] | None = None
    if session.status == "complete" or session.customer_email:
        details = {"address": None, "business_name": None, "email": session.customer_email,
                   "individual_name": None, "name": session.customer_name, "phone": None, "tax_exempt": "none",
                   "tax_ids": []}
    return {
        "id": session.id, "object": "checkout.session", "adaptive_pricing": {"enabled": False},
        "after_expiration": None, "allow_promotion_codes": None, "allowed_payment_method_types": None,
        "amount_subtotal": amount, "amount_total": amount,
        "automatic_tax": {"enabled": session.automatic_tax, "liability": None, "provider": None,
                          "status": "complete" if session.automatic_tax else None},
        "billing_address_collection": None, "cancel_url": session.cancel_url,
        "client_reference_id": session.client_reference_id, "client_secret": None,
        "collected_information": None, "consent": None, "consent_collection": None, "created": session.created,
        "currency": session.currency, "currency_conversion": None, "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": None, "customer_account": None, "customer_creation": "if_required",
        "customer_details": details, "customer_email": session.customer_email, "discounts": [],
        "expires_at": session.expires_at, "integration_identifier": None, "invoice": None,
        "invoice_creation": None, "livemode": session.livemode, "locale": None, "managed_payments": None,
        "metadata": dict(session.metadata), "mode": session.mode, "origin_context": None,
        "payment_intent": session.payment_intent, "payment_link": None,
        "payment_method_collection": "if_required" if session.mode != "payment" else None,
        "payment_method_configuration_details": None, "payment_method_options": {},
        "payment_method_types": ["card"], "payment_status": session.payment_status, "permissions": None,
        "recovered_from": None, "saved_payment_method_options": None, "setup_intent": None,
        "shipping_address_collection": None, "shipping_cost": None, "shipping_options": [],
        "status": session.status, "submit_type": None, "subscription": session.subscription,
        "success_url": session.success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page", "url": session.url if session.status == "open" else None,
        "wallet_options": None,
    }


def endpoint_json(endpoint: EndpointRecord, *, with_secret: bool = False) -> dict[str, Any]:
    """A webhook endpoint object; the secret only on creation, as Stripe does."""
    body: dict[str, Any] = {
        "id": endpoint.id, "object": "webhook_endpoint", "api_version": endpoint.api_version,
        "application": None, "created": endpoint.created, "description": endpoint.description,
        "enabled_events": list(endpoint.enabled_events), "livemode": endpoint.livemode,
        "metadata": dict(endpoint.metadata), "status": endpoint.status, "url": endpoint.url,
    }
    if with_secret:
        body["secret"] = endpoint.secrets[0][0]
    return body


@dataclass
class AccountRecord:
    """A connected account of the platform (Stripe Connect)."""

    id: str
    created: int
    type: str = "standard"
    country: str = "US"
    email: str | None = None
    default_currency: str = "usd"
    metadata: dict[str, str] = field(default_factory=dict)
    livemode: bool = False  #: the mode its objects and events are in (a live platform may have test activity)


def account_json(account: AccountRecord) -> dict[str, Any]:
    """A connected account object (what a platform reads of it)."""
    return {
        "id": account.id, "object": "account", "business_profile": None, "business_type": None,
        "charges_enabled": True, "country": account.country, "created": account.created,
        "default_currency": account.default_currency, "details_submitted": True, "email": account.email,
        "metadata": dict(account.metadata), "payouts_enabled": True, "type": account.type,
    }


def offer_json(offer: Offer, session: SessionRecord) -> dict[str, Any]:
    """The sim view of a session's cross-sell offer."""
    added = session.cross_sell_item
    return {"source_product": offer.source, "product": offer.product, "price": offer.price.id,
            "added": added is not None, "line_item": added.id if added else None,
            "available": added is None and session.status == "open"}


def refusal_json(refusal: Refusal) -> dict[str, Any]:
    """One configured cross-sell the session does not offer, and why."""
    return {"source_product": refusal.source, "product": refusal.product, "failed_rules": list(refusal.failed)}
