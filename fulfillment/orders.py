"""What to fulfill for a paid session: its items classified (primary or cross-sell), as pure functions."""
from __future__ import annotations

from collections.abc import Sequence

from fulfillment.catalog import Catalog
from fulfillment.crosssell import SessionContext, item_anomalies
from fulfillment.records import Order, OrderItem
from fulfillment.schemas import CheckoutSession, LineItem


def mask_email(email: str | None) -> str | None:
    """``jane.doe@example.com`` → ``j***@example.com``: enough to recognise, never the address."""
    if not email or "@" not in email:
        return None
    local, domain = email.rsplit("@", 1)
    return f"{local[:1]}***@{domain}"


#: The handler of an item crossfill cannot classify: it fails that item alone, with the reason, through
#: the same ledger + dead-letter path as any handler's permanent error (fulfillment/handlers.py).
UNFULFILLABLE = "unfulfillable"


def classify_items(session: CheckoutSession, items: Sequence[LineItem], catalog: Catalog) -> list[OrderItem]:
    """Describe each line item for the ledger: product, amounts, handler, and whether it is a cross-sell.

    An item is a cross-sell when another product of the same session offers its product as its
    cross-sell in the catalog. A cross-sell item that breaks a rule Stripe enforces on offers
    (quantity other than 1, currency, interval, tax behavior) is flagged as an anomaly — and still
    fulfilled, because the buyer paid for it. An item without a usable price or product (its
    ``problem``) gets the ``unfulfillable`` handler: it fails alone, the rest of the order goes on.
    """
    priced = [item for item in items if item.price is not None]
    products = [item.price.product for item in priced if item.price is not None]
    described: list[OrderItem] = []
    for position, item in enumerate(items):
        if item.price is None:
            described.append(_unfulfillable(item, position))
            continue
        config = catalog.product(item.price.product)
        sources = [other for other in products
                   if other != item.price.product and catalog.product(other).cross_sell == item.price.product]
        anomalies: tuple[str, ...] = ()
        if sources:
            context = SessionContext(
                mode=session.mode,
                prices=tuple(other.price for other in priced if other.id != item.id and other.price is not None),
                automatic_tax=session.automatic_tax,
                default_tax_behavior=catalog.default_tax_behavior,
            )
            anomalies = item_anomalies(item.price, item.quantity, context)
        described.append(OrderItem(
            id=item.id,
            position=position,
            product=item.price.product,
            product_name=item.price.product_name or config.name,
            price=item.price.id,
            description=item.description,
            quantity=item.quantity,
            currency=item.currency,
            amount_total=item.amount_total,
            cross_sell=bool(sources),
            cross_sold_by=sources[0] if sources else None,
            anomalies=anomalies,
            handler=config.handler,
        ))
    return described


def _unfulfillable(item: LineItem, position: int) -> OrderItem:
    return OrderItem(id=item.id, position=position, product=None, product_name="", price=None,
                     description=item.description, quantity=item.quantity, currency=item.currency,
                     amount_total=item.amount_total, handler=UNFULFILLABLE,
                     problem=item.problem or "the line item has no price")


def order_summary(session: CheckoutSession, items: Sequence[OrderItem] = (), *,
                  account: str | None = None) -> Order:
    """The order as recorded before fulfillment starts (no full email: the customer is masked).

    *account* is the connected account the session belongs to (None for the platform's own).
    """
    return Order(
        session_id=session.id,
        mode=session.mode,
        payment_status=session.payment_status,
        currency=session.currency,
        amount_total=session.amount_total,
        customer=mask_email(session.customer_email),
        client_reference_id=session.client_reference_id,
        livemode=session.livemode,
        item_count=len(items),
        cross_sell_count=sum(1 for item in items if item.cross_sell),
        anomalies=tuple({"item": item.id, "anomalies": list(item.anomalies)} for item in items if item.anomalies),
        account=account,
    )
