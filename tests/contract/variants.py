"""Documents Stripe could send, built from the vendored field lists of the pinned API version.

Each builder starts from Stripe's own fixture (or from nothing but the field list) and changes it
the ways the types allow: nulls where a field is nullable, new values of open enums, fields we have
never heard of, and only the always-present fields. ``tests.fixtures.stripe.problems`` checks the
builders themselves, so a variant is a document Stripe's types permit, not a guess.
"""
from __future__ import annotations

import copy
from typing import Any

from tests.fixtures.stripe import OBJECTS, fields, fixture

#: a value no open enum has today
NEW_VALUE = "value_from_2027"
#: an unknown field added at every level by :func:`with_unknown_fields`
NEW_FIELD = "field_from_2027"


def _split(path: str) -> list[str]:
    return path.split(".")


def nullable_paths(object_name: str) -> list[str]:
    """Nullable fields outside arrays (an array element has no place to be null in a fixture)."""
    return [path for path, spec in fields(object_name).items() if spec["nullable"] and "[]" not in path]


def open_enum_paths(object_name: str) -> list[str]:
    return [path for path, spec in fields(object_name).items()
            if spec["kind"] == "enum" and spec.get("open") and "[]" not in path]


def get_path(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for key in _split(path):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def set_path(document: dict[str, Any], path: str, value: Any) -> bool:
    """Set ``path`` where its parent object exists; False (and nothing changed) when it does not."""
    *parents, last = _split(path)
    parent: Any = document
    for key in parents:
        parent = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(parent, dict):
        return False
    parent[last] = value
    return True


def with_null(document: dict[str, Any], path: str) -> dict[str, Any] | None:
    """A copy with ``path`` null, or None when the fixture has no parent object for it."""
    changed = copy.deepcopy(document)
    return changed if set_path(changed, path, None) else None


def with_all_nulls(document: dict[str, Any], object_name: str) -> dict[str, Any]:
    """A copy with every nullable field null (outermost first, so a null parent hides its children)."""
    changed = copy.deepcopy(document)
    for path in sorted(nullable_paths(object_name), key=lambda p: p.count(".")):
        set_path(changed, path, None)
    return changed


def with_unknown_fields(document: Any) -> Any:
    """A copy with an unknown field in every object, at every depth."""
    if isinstance(document, dict):
        changed = {key: with_unknown_fields(value) for key, value in document.items()}
        changed[NEW_FIELD] = {"nested": [1, "two", None], "flag": True}
        return changed
    if isinstance(document, list):
        return [with_unknown_fields(value) for value in document]
    return document


def synthesized(object_name: str, *, nulls: bool, optional: bool = False, prefix: str = "") -> dict[str, Any]:
    """The fields of ``object_name`` from the lists alone: the always-present ones (and, with
    ``optional``, the optional ones too).

    ``nulls``: every nullable field is null; otherwise every field has a value of its kind.
    """
    spec_of = fields(object_name)
    document: dict[str, Any] = {}
    for path, spec in spec_of.items():
        parent, _, name = path.rpartition(".")
        if parent != prefix or "[]" in name or not (spec["always"] or optional) or spec["kind"] == "never":
            continue
        document[name] = _value(object_name, path, spec, nulls, optional)
    return document


def complete(object_name: str) -> dict[str, Any]:
    """Stripe's fixture with every field of the version present: the fixture's values where it has
    them (and they are not null), values of the right kind elsewhere, so every nested object exists."""
    return _merge(synthesized(object_name, nulls=False, optional=True), fixture(object_name))


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return base if over is None else over


def _value(object_name: str, path: str, spec: dict[str, Any], nulls: bool, optional: bool) -> Any:
    if spec["nullable"] and nulls:
        return None
    kind = spec["kind"].split("|")[0]
    name = path.rpartition(".")[2]
    if kind == "enum":
        return spec["enum"][0]
    if kind == "object":
        return synthesized(object_name, nulls=nulls, optional=optional, prefix=path)
    if kind in ("ref", "expandable"):
        target = spec["objects"][0]
        if kind == "expandable":
            return f"{target.split('.')[-1][:4]}_synthesized"
        if target in OBJECTS:
            return synthesized(target, nulls=nulls, optional=optional)
        return {"id": f"{target}_synthesized", "object": target}
    return {
        "string": "usd" if name == "currency" else f"{name}_synthesized",
        "number": 1,
        "boolean": False,
        "decimal": "1.5",
        "array": [],
        "map": {},
        "list": {"object": "list", "data": [], "has_more": False, "url": "/v1/list"},
    }[kind]


def stripe_fixture(name: str, **changes: Any) -> dict[str, Any]:
    """Stripe's fixture for ``name`` with top-level ``changes``."""
    document = fixture(name)
    document.update(changes)
    return document


# --- an order made of Stripe's own objects ------------------------------------------------------------------

TSHIRT = "prod_QXg1hqf4jFNsqG"  #: the product of Stripe's fixtures
MUG = "prod_MugCrossSell"  #: a second product, built from the product fixture


def paid_session(session_id: str | None = None) -> dict[str, Any]:
    """Stripe's session fixture, completed and paid."""
    session = fixture("checkout.session")
    session.update(status="complete", payment_status="paid", currency="usd", amount_total=3000)
    if session_id:
        session["id"] = session_id
    return session


def tshirt_item(item_id: str | None = None) -> dict[str, Any]:
    """Stripe's ``item`` fixture as published: ``metadata`` null, the product as an id."""
    item = fixture("item")
    if item_id:
        item["id"] = item_id
    return item


def mug_item() -> dict[str, Any]:
    """A second item from Stripe's ``price`` and ``product`` fixtures, the product expanded."""
    item, price, product = fixture("item"), fixture("price"), fixture("product")
    product.update(id=MUG, name="Mug", description=None, url=None, tax_details=None)
    price.update(id="price_Mug", product=product, type="one_time", recurring=None, tax_behavior=None)
    item.update(id="li_Mug", price=price, description=None, quantity=1, amount_total=1000)
    return item


def no_price_item() -> dict[str, Any]:
    """Every nullable field of the item null, as the types allow: no price to classify."""
    item = with_all_nulls(complete("item"), "item")
    item["id"] = "li_NoPrice"
    return item
