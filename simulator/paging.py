"""Stripe's cursor pagination over an ordered sequence, pure."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from simulator import defaults
from simulator.errors import InvalidRequest
from simulator.params import Params

T = TypeVar("T")


def page(items: Sequence[T], id_of: Callable[[T], str], params: Params) -> tuple[list[T], bool]:
    """Cut the page that ``limit`` / ``starting_after`` / ``ending_before`` in *params* ask for.

    *items* are in list order (the order Stripe lists them in). With ``ending_before`` the page is
    the ``limit`` items just before the cursor, still in list order, and ``has_more`` says whether
    more come before it — what stripe-python's ``previous_page`` expects.

    Raises:
        InvalidRequest: for a limit outside 1..100, both cursors, or a cursor not in the list.
    """
    limit = params.integer("limit", minimum=1, maximum=defaults.MAX_PAGE_LIMIT, default=defaults.PAGE_LIMIT)
    assert limit is not None
    after = params.string("starting_after")
    before = params.string("ending_before")
    if after and before:
        raise InvalidRequest("You may only specify one of these parameters: ending_before, starting_after.",
                             param="ending_before")
    if before:
        end = _position(items, id_of, before, "ending_before")
        start = max(0, end - limit)
        return list(items[start:end]), start > 0
    start = _position(items, id_of, after, "starting_after") + 1 if after else 0
    return list(items[start:start + limit]), start + limit < len(items)


def _position(items: Sequence[T], id_of: Callable[[T], str], cursor: str, name: str) -> int:
    for index, item in enumerate(items):
        if id_of(item) == cursor:
            return index
    raise InvalidRequest(f"Invalid {name}: no object with id {cursor!r} in this list", param=name)


def list_object(data: list[Any], has_more: bool, url: str) -> dict[str, Any]:
    """Stripe's list envelope."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}
