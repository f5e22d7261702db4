"""Stripe's form encoding: bracket notation both ways, pure.

``line_items[0][price]=price_1&expand[]=line_items&metadata[k]=v`` decodes to
``{"line_items": [{"price": "price_1"}], "expand": ["line_items"], "metadata": {"k": "v"}}``.
Numeric brackets make lists (stripe-python writes ``expand[0]``; curl users write ``expand[]``);
values stay strings, :mod:`simulator.params` types them.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from simulator.errors import InvalidRequest

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")

Form = dict[str, Any]


def parse_query(raw: bytes | str) -> list[tuple[str, str]]:
    """Split an urlencoded body or query string into pairs, keeping blank values.

    Raises:
        InvalidRequest: when the bytes are not UTF-8.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not UTF-8; send application/x-www-form-urlencoded text") from None
    return parse_qsl(text, keep_blank_values=True)


def decode(pairs: Iterable[tuple[str, str]]) -> Form:
    """Build nested params from bracket-notation *pairs*.

    Raises:
        InvalidRequest: naming the key, when a key is malformed or used both as a value and a hash.
    """
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise InvalidRequest(f"malformed parameter name {key!r}; use name, name[key] or name[0]", param=key)
        path = [match.group(1), *_SEGMENT.findall(match.group(2))]
        _assign(root, path, value, key)
    return {name: _listify(node) for name, node in root.items()}


def _assign(root: dict[str, Any], path: list[str], value: str, key: str) -> None:
    node = root
    for depth, segment in enumerate(path):
        last = depth == len(path) - 1
        if segment == "":
            if not last:
                raise InvalidRequest(f"{key!r}: [] is only allowed at the end of a name; use [0], [1], ...", param=key)
            segment = str(_next_index(node))
        if last:
            if segment in node and isinstance(node[segment], dict):
                raise InvalidRequest(f"{key!r} is given both as a value and as a hash", param=key)
            node[segment] = value
            return
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise InvalidRequest(f"{key!r} is given both as a value and as a hash", param=key)
        node = child


def _next_index(node: dict[str, Any]) -> int:
    indexes = [int(k) for k in node if k.isdigit()]
    return max(indexes) + 1 if indexes else 0


def _listify(node: Any) -> Any:
    """Turn hashes whose keys are all numbers into lists, in index order."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def encode(params: Mapping[str, Any]) -> str:
    """Encode nested *params* the way stripe-python does (lists as ``[0]``, booleans lowercase)."""
    return urlencode(list(flatten(params)))


def flatten(params: Mapping[str, Any], prefix: str | None = None) -> Iterable[tuple[str, str]]:
    """Yield the ``(bracket key, string value)`` pairs of *params*; None values are left out."""
    for name, value in params.items():
        key = name if prefix is None else f"{prefix}[{name}]"
        if value is None:
            continue
        if isinstance(value, Mapping):
            yield from flatten(value, key)
        elif isinstance(value, (list, tuple)):
            yield from flatten({str(i): item for i, item in enumerate(value)}, key)
        elif isinstance(value, bool):
            yield key, "true" if value else "false"
        else:
            yield key, str(value)
