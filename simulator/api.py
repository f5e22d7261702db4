"""``/v1``: Stripe's API paths and params, over :class:`simulator.store.Store`.

Views only parse params and call the store; authentication, injected faults and Idempotency-Key
replays happen around every request in :mod:`simulator.app`.
"""
from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, request

from fulfillment.catalog import TAX_BEHAVIORS
from simulator.context import current_account, current_sim, current_store, expansions, read_params, request_info
from simulator.errors import InvalidRequest
from simulator.expansion import Expansion, count_expanded
from simulator.filters import (
    ACCOUNT_FILTERS,
    PRICE_FILTERS,
    PRODUCT_FILTERS,
    account_filter,
    price_filter,
    product_filter,
)
from simulator.params import Params, to_int
from simulator.resources import ACCOUNT_TYPES, INTERVALS, MODES, SESSION_STATUSES
from simulator.store import LineItemSpec

_EVENT_TYPE = re.compile(r"^(\*|[a-z_]+(\.[a-z_]+)+)$")  #: an event type, or ``*`` for all
_EVENT_PATTERN = re.compile(r"^[a-z0-9_.*]+$")  #: an event type filter, ``*`` matching any characters
MAX_EVENT_TYPES = 20  #: ``types[]`` takes at most this many names (Stripe's limit)

api = Blueprint("api", __name__, url_prefix="/v1")


@api.post("/products")
def create_product() -> Any:
    params = read_params()
    params.allow("id", "name", "active", "description", "metadata")
    expansions(params, "product")
    name = params.string("name", required=True)
    assert name is not None
    return current_store().create_product(
        name=name, product_id=params.string("id", max_length=255), active=params.boolean("active", default=True),
        description=params.string("description"), metadata=params.metadata(), request=request_info())


@api.get("/products")
def list_products() -> Any:
    params = read_params()
    params.allow(*PRODUCT_FILTERS, "limit", "starting_after", "ending_before")
    expansions(params, "list:product")
    return current_store().list_products(params.page(), None, product_filter(params))


@api.get("/products/<product_id>")
def get_product(product_id: str) -> Any:
    params = read_params()
    params.allow()
    expansions(params, "product")
    return current_store().get_product(product_id)


@api.post("/products/<product_id>")
def update_product(product_id: str) -> Any:
    params = read_params()
    params.allow("name", "active", "description", "metadata")
    expansions(params, "product")
    active = params.boolean("active") if "active" in params else None
    return current_store().update_product(
        product_id, name=params.string("name"), active=active, description=params.string("description"),
        metadata=params.metadata(), request=request_info())


@api.post("/prices")
def create_price() -> Any:
    params = read_params()
    params.allow("product", "currency", "unit_amount", "recurring", "tax_behavior", "active", "nickname",
                 "lookup_key", "metadata")
    expand = expansions(params, "price")
    product = params.string("product", required=True)
    currency = params.currency("currency", required=True)
    unit_amount = params.integer("unit_amount", required=True, minimum=0, maximum=99_999_999)
    recurring = Params(params.hash("recurring"))
    interval = recurring.choice("interval", INTERVALS, required="recurring" in params)
    interval_count = recurring.integer("interval_count", minimum=1, maximum=365) if interval else None
    if "interval_count" in recurring and interval is None:
        raise InvalidRequest("recurring[interval_count] needs recurring[interval]", param="recurring[interval]")
    assert product is not None and currency is not None and unit_amount is not None
    created = current_store().create_price(
        product=product, currency=currency, unit_amount=unit_amount, interval=interval,
        interval_count=interval_count,
        tax_behavior=params.choice("tax_behavior", TAX_BEHAVIORS, default="unspecified") or "unspecified",
        active=params.boolean("active", default=True), nickname=params.string("nickname"),
        lookup_key=params.string("lookup_key"), metadata=params.metadata(), request=request_info())
    return current_store().get_price(created["id"], expand=expand) if expand.fields else created


@api.get("/prices/<price_id>")
def get_price(price_id: str) -> Any:
    params = read_params()
    params.allow()
    return current_store().get_price(price_id, expand=expansions(params, "price"))


@api.get("/prices")
def list_prices() -> Any:
    params = read_params()
    params.allow(*PRICE_FILTERS, "limit", "starting_after", "ending_before")
    return current_store().list_prices(params.page(), product=None, active=None,
                                       expand=expansions(params, "list:price"), where=price_filter(params))


@api.post("/checkout/sessions")
def create_session() -> Any:
    params = read_params()
    params.allow("mode", "line_items", "automatic_tax", "metadata", "client_reference_id", "customer_email",
                 "success_url", "cancel_url", "sim")
    expand = expansions(params, "checkout.session")
    mode = params.choice("mode", MODES, required=True)
    assert mode is not None
    extras = Params(params.hash("sim"))
    extras.allow("subscription_upsells")
    created = current_store().create_session(
        mode=mode, line_items=_line_items(params), base_url=request.host_url,
        automatic_tax=Params(params.hash("automatic_tax")).boolean("enabled"),
        subscription_upsells=extras.boolean("subscription_upsells"), metadata=params.metadata(),
        client_reference_id=params.string("client_reference_id", max_length=200),
        customer_email=params.string("customer_email"), success_url=params.string("success_url"),
        cancel_url=params.string("cancel_url"))
    return current_store().get_session(created["id"], expand=expand) if expand.fields else created


def _line_items(params: Params) -> list[LineItemSpec]:
    raw = params.raw("line_items")
    if raw is None or raw == "":
        return []
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise InvalidRequest("line_items must be a list: line_items[0][price]=...&line_items[0][quantity]=...",
                             param="line_items")
    specs = []
    for index, item in enumerate(raw):
        where = f"line_items[{index}]"
        for name in item:
            if name not in ("price", "quantity"):
                raise InvalidRequest(f"Received unknown parameter: {where}[{name}]", param=f"{where}[{name}]")
        if not item.get("price"):
            raise InvalidRequest(f"Missing required param: {where}[price].", param=f"{where}[price]",
                                 code="parameter_missing")
        if item.get("quantity") in (None, ""):
            raise InvalidRequest(f"Quantity is required. Add `quantity` to `{where}`", param=f"{where}[quantity]",
                                 code="parameter_missing")
        quantity = to_int(item["quantity"], f"{where}[quantity]", minimum=1, maximum=999_999)
        specs.append(LineItemSpec(price=str(item["price"]), quantity=quantity))
    return specs


#: ``GET /v1/checkout/sessions`` filters that match one field of the session exactly (Stripe's list
#: params), and the session field each reads.
SESSION_FILTERS = {"payment_intent": "payment_intent", "customer": "customer", "payment_link": "payment_link",
                   "subscription": "subscription"}


@api.get("/checkout/sessions")
def list_sessions() -> Any:
    params = read_params()
    params.allow("status", "created", "limit", "starting_after", "ending_before", "customer_details",
                 *SESSION_FILTERS)
    expand = expansions(params, "list:checkout.session")
    equal = {field: value for name, field in SESSION_FILTERS.items()
             if (value := params.string(name, max_length=255)) is not None}
    details = Params(params.hash("customer_details"))
    details.allow("email")
    email = details.string("email", max_length=800)
    if email is not None:
        equal["customer_details.email"] = email
    listed = current_store().list_sessions(params.page(), status=params.choice("status", SESSION_STATUSES),
                                           created=params.range("created"), equal=equal, expand=expand)
    return _held(listed, expand)


@api.get("/checkout/sessions/<session_id>")
def get_session(session_id: str) -> Any:
    params = read_params()
    params.allow()
    expand = expansions(params, "checkout.session")
    return _held(current_store().get_session(session_id, expand=expand), expand)


def _held(body: dict[str, Any], expand: Expansion) -> dict[str, Any]:
    """*body*, after the latency its expanded objects cost (``/sim/faults expand_latency_ms``): Stripe
    does more work for a deep expansion, and a benchmark must not get it for free."""
    delay = current_sim().faults.expansion_delay(request.path, count_expanded(body, expand))
    if delay:
        time.sleep(delay)
    return body


@api.post("/checkout/sessions/<session_id>/expire")
def expire_session_api(session_id: str) -> Any:
    params = read_params()
    params.allow()
    expand = expansions(params, "checkout.session")
    current_store().expire_session(session_id)
    return current_store().get_session(session_id, expand=expand)


@api.get("/checkout/sessions/<session_id>/line_items")
def list_line_items(session_id: str) -> Any:
    params = read_params()
    params.allow("limit", "starting_after", "ending_before")
    expand = expansions(params, "list:item")
    return _held(current_store().list_line_items(session_id, params.page(), expand=expand), expand)


@api.get("/events")
def list_events() -> Any:
    params = read_params()
    params.allow("type", "types", "created", "limit", "starting_after", "ending_before", "delivery_success")
    expansions(params, "list:event")
    types = params.strings("types")
    single = params.string("type")
    if single and types:
        raise InvalidRequest("You may only specify one of these parameters: type, types.", param="types")
    if len(types) > MAX_EVENT_TYPES:
        raise InvalidRequest(f"Invalid array: types must have at most {MAX_EVENT_TYPES} elements "
                             f"(got {len(types)})", param="types")
    for name in [single] if single else types:
        if not _EVENT_PATTERN.match(name):
            raise InvalidRequest(f"Invalid type: {name!r} is not an event type (e.g. checkout.session.completed, "
                                 "or checkout.session.* with type=)", param="type" if single else "types")
    where = None
    if "delivery_success" in params:
        wanted = params.boolean("delivery_success")
        dispatcher = current_sim().dispatcher

        def where(event: dict[str, Any]) -> bool:
            return dispatcher.delivered(event["id"]) is wanted

    listed = current_store().list_events(params.page(), types=[single] if single else types,
                                         created=params.range("created"), where=where)
    listed["data"] = [_with_pending(event) for event in listed["data"]]
    return listed


def _with_pending(event: dict[str, Any]) -> dict[str, Any]:
    """The event with ``pending_webhooks`` as of now (deliveries not yet acknowledged nor given up)."""
    return {**event, "pending_webhooks": current_sim().dispatcher.pending_count(event["id"])}


@api.get("/events/<event_id>")
def get_event(event_id: str) -> Any:
    params = read_params()
    params.allow()
    expansions(params, "event")
    return _with_pending(current_store().get_event(event_id))


@api.post("/webhook_endpoints")
def create_endpoint() -> Any:
    params = read_params()
    params.allow("url", "enabled_events", "description", "metadata", "api_version", "secret", "connect")
    expansions(params, "webhook_endpoint")
    url = params.string("url", required=True)
    assert url is not None
    secret = params.string("secret")
    if secret is not None and not secret.startswith("whsec_"):
        raise InvalidRequest(f"secret must start with whsec_ (got {secret[:6]!r}...)", param="secret")
    return current_store().create_endpoint(
        url=_url(url), enabled_events=_events(params, required=True), secret=secret,
        description=params.string("description"), metadata=params.metadata(),
        api_version=params.string("api_version"), connect=params.boolean("connect"))


def _url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"Invalid URL: {url!r}; use an http:// or https:// URL", param="url")
    return url


def _events(params: Params, *, required: bool) -> list[str]:
    events = params.strings("enabled_events")
    if required and not events:
        raise InvalidRequest("Missing required param: enabled_events.", param="enabled_events",
                             code="parameter_missing")
    for event in events:
        if not _EVENT_TYPE.match(event):
            raise InvalidRequest(f"Invalid enabled_events: {event!r} is not an event type (or '*')",
                                 param="enabled_events")
    return events


@api.get("/webhook_endpoints")
def list_endpoints() -> Any:
    params = read_params()
    params.allow("limit", "starting_after", "ending_before")
    expansions(params, "list:webhook_endpoint")
    return current_store().list_endpoints(params.page())


@api.get("/webhook_endpoints/<endpoint_id>")
def get_endpoint(endpoint_id: str) -> Any:
    params = read_params()
    params.allow()
    expansions(params, "webhook_endpoint")
    return current_store().get_endpoint(endpoint_id)


@api.post("/webhook_endpoints/<endpoint_id>")
def update_endpoint(endpoint_id: str) -> Any:
    params = read_params()
    params.allow("url", "enabled_events", "disabled")
    expansions(params, "webhook_endpoint")
    url = params.string("url")
    disabled = params.boolean("disabled") if "disabled" in params else None
    return current_store().update_endpoint(endpoint_id, url=_url(url) if url else None,
                                           enabled_events=_events(params, required=False), disabled=disabled)


@api.delete("/webhook_endpoints/<endpoint_id>")
def delete_endpoint(endpoint_id: str) -> Any:
    params = read_params()
    params.allow()
    expansions(params, "webhook_endpoint")
    return current_store().delete_endpoint(endpoint_id)


@api.post("/accounts")
def create_account() -> Any:
    params = read_params()
    params.allow("type", "country", "email", "metadata", "sim")
    expansions(params, "account")
    if current_account():
        raise InvalidRequest("Only the platform can connect accounts: send POST /v1/accounts without a "
                             "Stripe-Account header", param="Stripe-Account")
    extras = Params(params.hash("sim"))
    extras.allow("id", "livemode")
    country = params.string("country") or "US"
    if len(country) != 2 or not country.isalpha():
        raise InvalidRequest(f"Invalid country: {country!r}; use a two-letter ISO code such as US", param="country")
    return current_sim().create_account(
        account_id=extras.string("id"), type=params.choice("type", ACCOUNT_TYPES, default="standard") or "standard",
        country=country.upper(), email=params.string("email"), metadata=params.metadata(),
        livemode=extras.boolean("livemode") if "livemode" in extras else None)


@api.get("/accounts")
def list_accounts() -> Any:
    params = read_params()
    params.allow(*ACCOUNT_FILTERS, "limit", "starting_after", "ending_before")
    expansions(params, "list:account")
    return current_sim().list_accounts(params.page(), account_filter(params))


@api.get("/accounts/<account_id>")
def get_account(account_id: str) -> Any:
    params = read_params()
    params.allow()
    expansions(params, "account")
    return current_sim().get_account(account_id)
