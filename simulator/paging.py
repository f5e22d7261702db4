"""Stripe's list requests, pure: cursor pagination over an ordered sequence, and time ranges."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from simulator import defaults
from simulator.errors import InvalidRequest

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """Which page of a list is asked for: its size and at most one cursor (an object id)."""

    limit: int = defaults.PAGE_LIMIT
    starting_after: str | None = None
    ending_before: str | None = None


@dataclass(frozen=True)
class Range:
    """Bounds on a timestamp (``created[gt|gte|lt|lte]``); None means unbounded on that side."""

    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    def holds(self, value: int) -> bool:
        """Whether *value* is within every bound."""
        return ((self.gt is None or value > self.gt) and (self.gte is None or value >= self.gte)
                and (self.lt is None or value < self.lt) and (self.lte is None or value <= self.lte))


ANY_TIME = Range()


def page(items: Sequence[T], id_of: Callable[[T], str], wanted: Page) -> tuple[list[T], bool]:
    """Cut the page *wanted* out of *items*.

    *items* are in list order (the order Stripe lists them in). With ``ending_before`` the page is
    the ``limit`` items just before the cursor, still in list order, and ``has_more`` says whether
    more come before it — what stripe-python's ``previous_page`` expects.

    Raises:
        InvalidRequest: for both cursors, or a cursor not in the list.
    """
    after, before, limit = wanted.starting_after, wanted.ending_before, wanted.limit
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
