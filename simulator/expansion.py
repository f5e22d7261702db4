"""``expand[]`` as Stripe reads it, pure: dotted paths, at most four levels, each level expandable.

``expand[]=line_items.data.price.product`` on a Checkout Session parses into
``Expansion({"line_items": Expansion({"data": Expansion({"price": Expansion({"product": ...})})})})``
after each step has been checked against :data:`EXPANDABLE`; rendering then asks
``"line_items" in expansion`` and passes ``expansion["line_items"]`` down.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import InvalidRequest

MAX_DEPTH = 4  #: Stripe expands at most four levels of a property

#: object kind → {field: the kind of what it expands to}. ``list:x`` is a list object of x.
EXPANDABLE: Mapping[str, Mapping[str, str]] = {
    "checkout.session": {"line_items": "list:item"},
    "item": {"price": "price"},
    "price": {"product": "product"},
    "product": {},
    "event": {},
    "webhook_endpoint": {},
    "account": {},
}


@dataclass(frozen=True)
class Expansion:
    """The paths to expand below one object: its fields, each with the paths below it."""

    fields: Mapping[str, Expansion] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def __getitem__(self, name: str) -> Expansion:
        return self.fields.get(name, NOTHING)


NOTHING = Expansion()
_Tree = dict[str, "_Tree"]


def expandable(kind: str) -> Mapping[str, str]:
    """The fields an object of *kind* can expand (a list object: only ``data``)."""
    if kind.startswith("list:"):
        return {"data": kind.removeprefix("list:")}
    return EXPANDABLE[kind]


def parse_expand(paths: Iterable[str], kind: str) -> Expansion:
    """Check ``expand[]`` *paths* against an object of *kind* and build the tree to render.

    Raises:
        InvalidRequest: for a path deeper than four levels or a step that cannot be expanded,
            naming the path, as Stripe does.
    """
    tree: _Tree = {}
    for path in paths:
        steps = path.split(".")
        if len(steps) > MAX_DEPTH:
            raise InvalidRequest(f"You cannot expand more than {MAX_DEPTH} levels of a property. Property: {path}",
                                 param="expand")
        current, node = kind, tree
        for depth, step in enumerate(steps):
            target = expandable(current).get(step)
            if target is None:
                shown = ".".join(steps[:depth + 1])
                raise InvalidRequest(f"This property cannot be expanded ({shown}).", param="expand")
            current, node = target, node.setdefault(step, {})
    return _freeze(tree)


def _freeze(tree: _Tree) -> Expansion:
    return Expansion({name: _freeze(below) for name, below in tree.items()}) if tree else NOTHING


def count_expanded(body: Any, expansion: Expansion, *, expanded: bool = False) -> int:
    """How many objects *expansion* put into *body* (an answer as rendered): each object that stands in
    place of an id, and each element of a list that was itself expanded. The elements of the answer's own
    list (``data`` of ``GET /v1/checkout/sessions``) are not counted; what was expanded inside them is."""
    if not isinstance(body, dict) or not expansion.fields:
        return 0
    total = 0
    for name, below in expansion.fields.items():
        value = body.get(name)
        if name == "data" and isinstance(value, list):
            total += sum((1 if expanded else 0) + count_expanded(element, below) for element in value)
        elif isinstance(value, dict):
            total += 1 + count_expanded(value, below, expanded=True)
    return total
