"""Typed reading of decoded request params: each failure is a 400 naming the param."""
from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from simulator import defaults
from simulator.errors import InvalidRequest
from simulator.paging import ANY_TIME, Page, Range

_CURRENCY = re.compile(r"^[a-z]{3}$")


class Params:
    """The decoded params of one request, read with type checks."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = dict(values)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def allow(self, *names: str) -> None:
        """Refuse any top-level param not in *names* (``expand`` is always allowed), as Stripe does.

        Raises:
            InvalidRequest: ``Received unknown parameter: x``.
        """
        for name in self.values:
            if name not in names and name != "expand":
                raise InvalidRequest(f"Received unknown parameter: {name}", param=name)

    def raw(self, name: str) -> Any:
        """The value as decoded (string, list or hash), or None."""
        return self.values.get(name)

    def string(self, name: str, *, required: bool = False, max_length: int = 5000) -> str | None:
        """A string param; an empty string counts as absent."""
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise InvalidRequest(f"Missing required param: {name}.", param=name, code="parameter_missing")
            return None
        if not isinstance(value, str):
            raise InvalidRequest(f"Invalid string: {name} must be a string, got a {type(value).__name__}", param=name)
        if len(value) > max_length:
            raise InvalidRequest(f"Invalid string: {name} must be at most {max_length} characters", param=name)
        return value

    def integer(self, name: str, *, required: bool = False, minimum: int | None = None,
                maximum: int | None = None, default: int | None = None) -> int | None:
        """An integer param within [minimum, maximum]."""
        text = self.string(name, required=required)
        if text is None:
            return default
        return to_int(text, name, minimum=minimum, maximum=maximum)

    def boolean(self, name: str, *, default: bool = False) -> bool:
        """A ``true``/``false`` param."""
        return to_bool(self.values.get(name), name, default=default)

    def choice(self, name: str, options: Collection[str], *, required: bool = False,
               default: str | None = None) -> str | None:
        """A param that must be one of *options*."""
        value = self.string(name, required=required)
        if value is None:
            return default
        if value not in options:
            raise InvalidRequest(
                f"Invalid {name}: must be one of {', '.join(options)} (got {value!r})", param=name)
        return value

    def currency(self, name: str, *, required: bool = False) -> str | None:
        """A three-letter ISO currency code, lowercased."""
        value = self.string(name, required=required)
        if value is None:
            return None
        value = value.lower()
        if not _CURRENCY.match(value):
            raise InvalidRequest(f"Invalid currency: {value!r}; use a three-letter ISO code such as usd", param=name)
        return value

    def hash(self, name: str) -> dict[str, Any]:
        """A hash param (``name[key]=value``); absent gives {}."""
        value = self.values.get(name)
        if value is None or value == "":
            return {}
        if not isinstance(value, dict):
            raise InvalidRequest(f"Invalid hash: {name} must be given as {name}[key]=value", param=name)
        return value

    def strings(self, name: str) -> list[str]:
        """A list-of-strings param (``name[]=a`` or ``name[0]=a``); a single value counts as one item."""
        value = self.values.get(name)
        if value is None or value == "":
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            value = list(value.values())
        if not all(isinstance(item, str) for item in value):
            raise InvalidRequest(f"Invalid array: {name} must be a list of strings", param=name)
        return list(value)

    def expand(self) -> list[str]:
        """The ``expand[]`` paths asked for."""
        return self.strings("expand")

    def page(self) -> Page:
        """The page asked for by ``limit`` (1..100), ``starting_after`` and ``ending_before``."""
        limit = self.integer("limit", minimum=1, maximum=defaults.MAX_PAGE_LIMIT, default=defaults.PAGE_LIMIT)
        assert limit is not None
        return Page(limit=limit, starting_after=self.string("starting_after"),
                    ending_before=self.string("ending_before"))

    def range(self, name: str) -> Range:
        """A timestamp filter: ``name=t`` (exactly t) or ``name[gt|gte|lt|lte]=t``."""
        raw = self.values.get(name)
        if raw is None or raw == "":
            return ANY_TIME
        if isinstance(raw, str):
            exact = to_int(raw, name)
            return Range(gte=exact, lte=exact)
        if not isinstance(raw, dict):
            raise InvalidRequest(f"Invalid {name}: use a timestamp or {name}[gte|gt|lte|lt]=...", param=name)
        bounds = {}
        for op, value in raw.items():
            if op not in ("gt", "gte", "lt", "lte"):
                raise InvalidRequest(f"Received unknown parameter: {name}[{op}]", param=f"{name}[{op}]")
            if not isinstance(value, str) or value == "":
                raise InvalidRequest(f"Invalid integer: {name}[{op}]", param=f"{name}[{op}]")
            bounds[op] = to_int(value, f"{name}[{op}]")
        return Range(**bounds)

    def metadata(self, name: str = "metadata") -> dict[str, str]:
        """A metadata hash: string keys (≤40 chars) to string values (≤500 chars)."""
        meta = self.hash(name)
        for key, value in meta.items():
            if not isinstance(value, str):
                raise InvalidRequest(f"Invalid {name}[{key}]: metadata values are strings", param=f"{name}[{key}]")
            if len(key) > 40 or len(value) > 500:
                raise InvalidRequest(f"Invalid {name}[{key}]: keys are at most 40 characters and values at "
                                     "most 500", param=f"{name}[{key}]")
        return meta


def to_int(text: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Parse *text* as an integer param called *name*, within bounds."""
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    else:
        try:
            number = int(str(text), 10)
        except ValueError:
            raise InvalidRequest(f"Invalid integer: {name}={text!r}", param=name) from None
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise InvalidRequest(f"Invalid {name}: must be {bounds} (got {number})", param=name)
    return number


def to_bool(value: Any, name: str, *, default: bool = False) -> bool:
    """Parse ``true``/``false`` (JSON booleans too) for the param *name*."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise InvalidRequest(f"Invalid boolean: {name}={value!r}; use true or false", param=name)
