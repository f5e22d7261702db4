"""Stripe's bracket-notation form encoding, decoded by the simulator exactly as stripe-python encodes it."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode  # the encoder stripe-python puts on the wire

from simulator.errors import InvalidRequest
from simulator.forms import decode, encode, parse_query
from simulator.paging import page
from simulator.params import Params

#: No deadline and no too_slow check: CI shares 2 cores, and generating examples may be slow there.
ON_A_BUSY_MACHINE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_values = st.text(max_size=12)
_leaf_dicts = st.dictionaries(_names, _values, min_size=1, max_size=3)
_params = st.dictionaries(_names, st.one_of(
    _values,
    _leaf_dicts,
    st.lists(_values, min_size=1, max_size=3),
    st.lists(_leaf_dicts, min_size=1, max_size=3),
), max_size=5)


@ON_A_BUSY_MACHINE
@given(_params)
def test_decoding_what_stripe_python_sends_gives_the_params_back(params: dict[str, Any]) -> None:
    wire = urlencode(list(_api_encode(params)))

    assert decode(parse_query(wire)) == params


@ON_A_BUSY_MACHINE
@given(_params)
def test_encode_is_stripe_pythons_encoding(params: dict[str, Any]) -> None:
    assert parse_qsl(encode(params), keep_blank_values=True) == [(k, str(v)) for k, v in _api_encode(params)]


def test_a_session_request_decodes_to_nested_params() -> None:
    wire = ("mode=payment&line_items[0][price]=price_a&line_items[0][quantity]=2&line_items[1][price]=price_b"
            "&expand[]=line_items&expand[]=customer&metadata[order]=42&automatic_tax[enabled]=true")

    params = decode(parse_query(wire))

    assert params == {"mode": "payment", "expand": ["line_items", "customer"], "metadata": {"order": "42"},
                      "automatic_tax": {"enabled": "true"},
                      "line_items": [{"price": "price_a", "quantity": "2"}, {"price": "price_b"}]}


def test_indexes_order_the_list_whatever_order_they_arrive_in() -> None:
    assert decode([("types[1]", "b"), ("types[0]", "a"), ("types[10]", "c")]) == {"types": ["a", "b", "c"]}


@pytest.mark.parametrize("pairs", [
    [("a[b", "1")],
    [("[x]", "1")],
    [("a", "1"), ("a[b]", "2")],
    [("a[b]", "2"), ("a", "1")],
    [("a[][b]", "1")],
])
def test_malformed_or_conflicting_keys_are_400(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidRequest):
        decode(pairs)


def test_a_non_utf8_body_is_400() -> None:
    with pytest.raises(InvalidRequest):
        parse_query(b"name=%ff\xff")


@pytest.mark.parametrize(("value", "ok"), [("true", True), ("false", False)])
def test_booleans(value: str, ok: bool) -> None:
    assert Params({"b": value}).boolean("b") is ok
    with pytest.raises(InvalidRequest):
        Params({"b": "yes"}).boolean("b")


@ON_A_BUSY_MACHINE
@given(st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=100))
def test_paging_forwards_visits_every_item_once(count: int, limit: int) -> None:
    items = [f"li_{n}" for n in range(count)]
    seen: list[str] = []
    cursor: dict[str, Any] = {"limit": str(limit)}
    while True:
        data, more = page(items, lambda item: item, Params(cursor).page())
        seen += data
        if not more:
            break
        cursor = {"limit": str(limit), "starting_after": data[-1]}

    assert seen == items


@ON_A_BUSY_MACHINE
@given(st.integers(min_value=1, max_value=60), st.integers(min_value=1, max_value=100), st.data())
def test_paging_backwards_from_any_item_visits_everything_before_it(count: int, limit: int, data: Any) -> None:
    items = [f"li_{n}" for n in range(count)]
    end = data.draw(st.integers(min_value=0, max_value=count - 1))
    seen: list[str] = []
    cursor = {"limit": str(limit), "ending_before": items[end]}
    while True:
        chunk, more = page(items, lambda item: item, Params(cursor).page())
        seen = chunk + seen
        if not more:
            break
        cursor = {"limit": str(limit), "ending_before": chunk[0]}

    assert seen == items[:end]
