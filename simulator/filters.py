"""The documented filters of ``/v1`` list endpoints, as predicates over an object's Stripe JSON.

Each list takes the filters stripe-node's ``*ListParams`` type (23.1.0) names for it, with Stripe's
limits (``lookup_keys`` and ``ids`` hold at most 10 names); a filter the simulator does not know is
still refused as an unknown parameter by the view. The Checkout Sessions list is not here.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.errors import InvalidRequest
from simulator.params import Params
from simulator.resources import INTERVALS

Where = Callable[[dict[str, Any]], bool]
MAX_NAMES = 10  #: ``lookup_keys[]`` and ``ids[]`` name at most this many objects
PRODUCT_FILTERS = ("active", "created", "ids", "shippable", "type", "url")
PRICE_FILTERS = ("active", "created", "currency", "lookup_keys", "product", "recurring", "type")
ACCOUNT_FILTERS = ("created",)
PRODUCT_TYPES = ("good", "service")
PRICE_TYPES = ("one_time", "recurring")
USAGE_TYPES = ("licensed", "metered")


def _names(params: Params, name: str) -> list[str] | None:
    if name not in params:
        return None
    names = params.strings(name)
    if len(names) > MAX_NAMES:
        raise InvalidRequest(f"Invalid array: {name} must have at most {MAX_NAMES} elements (got {len(names)})",
                             param=name)
    return names


def _all(tests: list[Where]) -> Where:
    return lambda obj: all(test(obj) for test in tests)


def _created(params: Params) -> list[Where]:
    created = params.range("created")
    return [lambda obj: created.holds(obj["created"])] if "created" in params else []


def _flag(params: Params, name: str) -> list[Where]:
    if name not in params:
        return []
    wanted = params.boolean(name)
    return [lambda obj: obj.get(name) is wanted]


def product_filter(params: Params) -> Where:
    """``GET /v1/products``: active, created, ids[], shippable, type (good|service), url."""
    tests = _created(params) + _flag(params, "active") + _flag(params, "shippable")
    ids = _names(params, "ids")
    if ids is not None:
        tests.append(lambda obj: obj["id"] in ids)
    kind = params.choice("type", PRODUCT_TYPES)
    if kind is not None:
        tests.append(lambda obj: obj.get("type") == kind)
    url = params.string("url")
    if url is not None:
        tests.append(lambda obj: obj.get("url") == url)
    return _all(tests)


def price_filter(params: Params) -> Where:
    """``GET /v1/prices``: active, created, currency, lookup_keys[], product, recurring[interval|meter|
    usage_type], type (one_time|recurring)."""
    tests = _created(params) + _flag(params, "active")
    currency = params.currency("currency")
    if currency is not None:
        tests.append(lambda obj: obj["currency"] == currency)
    keys = _names(params, "lookup_keys")
    if keys is not None:
        tests.append(lambda obj: obj.get("lookup_key") in keys)
    product = params.string("product")
    if product is not None:
        tests.append(lambda obj: (obj["product"] if isinstance(obj["product"], str) else obj["product"]["id"])
                     == product)
    kind = params.choice("type", PRICE_TYPES)
    if kind is not None:
        tests.append(lambda obj: obj["type"] == kind)
    if "recurring" in params:
        recurring = Params(params.hash("recurring"))
        recurring.allow("interval", "meter", "usage_type")
        interval = recurring.choice("interval", INTERVALS)
        meter = recurring.string("meter")
        usage = recurring.choice("usage_type", USAGE_TYPES)
        tests.append(lambda obj: obj.get("recurring") is not None)
        if interval is not None:
            tests.append(lambda obj: (obj.get("recurring") or {}).get("interval") == interval)
        if meter is not None:
            tests.append(lambda obj: (obj.get("recurring") or {}).get("meter") == meter)
        if usage is not None:
            tests.append(lambda obj: (obj.get("recurring") or {}).get("usage_type") == usage)
    return _all(tests)


def account_filter(params: Params) -> Where:
    """``GET /v1/accounts``: created."""
    return _all(_created(params))
