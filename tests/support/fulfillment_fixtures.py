"""Helpers for the fulfillment unit tests: a scripted HTTP server, Stripe-shaped documents, fakeredis.

Imported as ``tests.support.fulfillment_fixtures``, like every test helper.
"""
from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import fakeredis

from fulfillment.schemas import CheckoutSession, LineItem, Price, parse_line_items

#: An API key shaped like Stripe's test keys; no error message or repr may ever contain it.
API_KEY = "sk_test_51CrossfillUnitTestsSecretKey0123456789"


# --- a real HTTP server that answers what the test scripts ------------------------------------------

@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, headers, body (bytes, or anything else as JSON), delay before it."""

    status: int = 200
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Responder = Callable[[Seen], Reply]


class ScriptedServer:
    """An ``http.server`` on 127.0.0.1:0 in a thread; each request gets ``responder(request)``."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.seen: list[Seen] = []
        self._stop = threading.Event()  # wakes handlers that were told to sleep, at teardown
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer()

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Seen(method=self.command, path=parts.path, query=parse_qs(parts.query),
                               headers={key.lower(): value for key, value in self.headers.items()},
                               body=self.rfile.read(length) if length else b"")
                server.seen.append(request)
                reply = server.responder(request)
                if reply.delay_s and server._stop.wait(reply.delay_s):
                    return
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (a read timeout): nothing to answer
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), name="scripted-http",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def always(reply: Reply) -> Responder:
    """A responder that gives every request the same *reply*."""
    return lambda _request: reply


def refused_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (connecting is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- Stripe-shaped API documents ----------------------------------------------------------------------

def stripe_product(product_id: str, name: str = "") -> dict[str, Any]:
    """An expanded Product, as ``expand[]=data.price.product`` returns it."""
    return {
        "id": product_id, "object": "product", "active": True, "created": 1_700_000_000,
        "default_price": None, "description": None, "images": [], "livemode": False,
        "marketing_features": [], "metadata": {}, "name": name or product_id, "package_dimensions": None,
        "shippable": None, "statement_descriptor": None, "tax_code": None, "unit_label": None,
        "updated": 1_700_000_000, "url": None,
    }


def stripe_price(price_id: str, product: str | dict[str, Any], *, currency: str = "usd", unit_amount: int = 2000,
                 interval: str | None = None, interval_count: int = 1,
                 tax_behavior: str | None = "exclusive") -> dict[str, Any]:
    """A Price as Stripe returns it inside a line item (one-time unless *interval* is given)."""
    recurring = None if interval is None else {
        "aggregate_usage": None, "interval": interval, "interval_count": interval_count, "meter": None,
        "trial_period_days": None, "usage_type": "licensed",
    }
    return {
        "id": price_id, "object": "price", "active": True, "billing_scheme": "per_unit", "created": 1_700_000_000,
        "currency": currency, "custom_unit_amount": None, "livemode": False, "lookup_key": None, "metadata": {},
        "nickname": None, "product": product, "recurring": recurring, "tax_behavior": tax_behavior,
        "tiers_mode": None, "transform_quantity": None, "type": "one_time" if interval is None else "recurring",
        "unit_amount": unit_amount, "unit_amount_decimal": str(unit_amount),
    }


def stripe_line_item(item_id: str, price: dict[str, Any], *, quantity: int = 1,
                     description: str = "Item") -> dict[str, Any]:
    """A line item (``object: "item"``) as ``GET /v1/checkout/sessions/{id}/line_items`` lists it."""
    amount = (price.get("unit_amount") or 0) * quantity
    return {
        "id": item_id, "object": "item", "adjustable_quantity": None, "amount_discount": 0,
        "amount_subtotal": amount, "amount_tax": 0, "amount_total": amount, "currency": price["currency"],
        "description": description, "metadata": {}, "price": price, "quantity": quantity,
    }


def stripe_session(session_id: str, *, payment_status: str = "paid", mode: str = "payment",
                   status: str = "complete", email: str | None = "jane.doe@example.com",
                   automatic_tax: bool = False) -> dict[str, Any]:
    """A Checkout Session as ``GET /v1/checkout/sessions/{id}`` returns it (no line items)."""
    return {
        "id": session_id, "object": "checkout.session", "adaptive_pricing": {"enabled": False},
        "after_expiration": None, "allow_promotion_codes": None, "amount_subtotal": 4500, "amount_total": 4500,
        "automatic_tax": {"enabled": automatic_tax, "liability": None, "status": None},
        "billing_address_collection": None, "cancel_url": "https://shop.example/cancel",
        "client_reference_id": "order-42", "consent": None, "created": 1_700_000_000, "currency": "usd",
        "customer": "cus_123", "customer_creation": "if_required",
        "customer_details": None if email is None else {"address": None, "email": email, "name": "Jane Doe",
                                                         "phone": None, "tax_exempt": "none", "tax_ids": []},
        "customer_email": None, "expires_at": 1_700_086_400, "invoice": None, "livemode": False, "locale": None,
        "metadata": {"campaign": "spring"}, "mode": mode, "payment_intent": "pi_123",
        "payment_method_types": ["card"], "payment_status": payment_status, "status": status,
        "success_url": "https://shop.example/success", "total_details": {"amount_discount": 0, "amount_tax": 0},
        "url": None,
    }


def line_item_page(*items: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    """A page of ``GET /v1/checkout/sessions/{id}/line_items`` holding *items*."""
    return {"object": "list", "data": list(items), "has_more": has_more,
            "url": "/v1/checkout/sessions/cs_test_1/line_items"}


def only_item(document: dict[str, Any]) -> LineItem:
    """The line item *document* as the schemas read it from a page of its own."""
    [item], _ = parse_line_items(line_item_page(document))
    return item


# --- typed objects, as the schemas produce them -------------------------------------------------------

def make_price(product: str, *, price_id: str | None = None, currency: str = "usd", interval: str | None = None,
               interval_count: int | None = None, tax_behavior: str = "exclusive") -> Price:
    return Price(id=price_id or f"price_{product}", product=product, product_name="", currency=currency,
                 type="one_time" if interval is None else "recurring", unit_amount=1500,
                 tax_behavior=tax_behavior, interval=interval,
                 interval_count=(interval_count or 1) if interval else None)


def make_item(item_id: str, product: str, *, quantity: int = 1, **price: Any) -> LineItem:
    made = make_price(product, **price)
    return LineItem(id=item_id, price=made, quantity=quantity, currency=made.currency,
                    amount_subtotal=1500 * quantity, amount_total=1500 * quantity, description=product)


def make_session(session_id: str = "cs_test_1", *, payment_status: str = "paid", mode: str = "payment",
                 automatic_tax: bool = False, email: str | None = "jane.doe@example.com") -> CheckoutSession:
    return CheckoutSession(id=session_id, mode=mode, status="complete", payment_status=payment_status,
                           currency="usd", amount_total=4500, automatic_tax=automatic_tax,
                           customer_email=email, livemode=False)


# --- Redis ----------------------------------------------------------------------------------------------

def fake_redis(server: fakeredis.FakeServer | None = None) -> fakeredis.FakeRedis:
    """A fakeredis client (Lua through lupa) decoding responses, as ``fulfillment.store.connect`` does."""
    return fakeredis.FakeRedis(server=server or fakeredis.FakeServer(), decode_responses=True)


# --- a third-party handler, loaded through an entry point -------------------------------------------------

def echo_handler(request: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """A handler as a plugin would ship one: answers with what it was given."""
    return {"handler": "echo", "key": request.idempotency_key, "options": dict(options)}
