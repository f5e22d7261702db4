"""The event envelope: what a verified body must look like before anything is recorded."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from webhooks.envelope import HANDLED_TYPES, parse_event
from webhooks.errors import InvalidPayload

EventFactory = Callable[..., dict[str, Any]]


def body_of(event: Any) -> bytes:
    return json.dumps(event).encode("utf-8")


def refusal(body: bytes) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as caught:
        parse_event(body)
    assert caught.value.status == 400
    assert caught.value.to_json()["error"]["type"] == "invalid_payload"
    return caught.value


@pytest.mark.parametrize("event_type", sorted(HANDLED_TYPES))
def test_good_event_of_each_handled_type(make_event: EventFactory, event_type: str) -> None:
    event = make_event(type=event_type, session_id="cs_test_a1", event_id="evt_1AbC")

    parsed = parse_event(body_of(event))

    assert parsed["id"] == "evt_1AbC"
    assert parsed["type"] == event_type
    assert parsed["data"]["object"]["id"] == "cs_test_a1"


def test_handled_types_are_the_four_checkout_session_events() -> None:
    assert HANDLED_TYPES == {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    }


def test_unknown_top_level_fields_are_excluded(make_event: EventFactory) -> None:
    event = make_event(request={"id": "req_1"}, surprise=[1, 2, 3])

    parsed = parse_event(body_of(event))

    assert set(parsed) == {"id", "object", "type", "created", "livemode", "data"}
    assert "api_version" not in parsed and "surprise" not in parsed


def test_the_session_object_is_kept_whole(make_event: EventFactory) -> None:
    event = make_event()

    assert parse_event(body_of(event))["data"]["object"] == event["data"]["object"]


def test_an_unhandled_type_needs_no_checkout_session(make_event: EventFactory) -> None:
    event = make_event(type="invoice.paid", data={"object": {"id": "in_1", "object": "invoice"}})

    assert parse_event(body_of(event))["type"] == "invoice.paid"


@pytest.mark.parametrize("body", [b"", b"{", b"{'id': 1}", b"NaN-ish", b'{"id": "evt_1",}'])
def test_bad_json(body: bytes) -> None:
    assert "not valid JSON" in str(refusal(body))


def test_body_that_is_not_utf8() -> None:
    assert "UTF-8" in str(refusal(b'{"id": "evt_\xff"}'))


def test_deeply_nested_json_is_a_refusal_not_a_crash() -> None:
    refusal(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize("document", [[], [{"id": "evt_1"}], "evt_1", 42, None, True])
def test_body_that_is_not_an_object(document: Any) -> None:
    assert "JSON object" in str(refusal(body_of(document)))


@pytest.mark.parametrize("missing", ["id", "object", "type", "created", "livemode", "data"])
def test_each_required_field(make_event: EventFactory, missing: str) -> None:
    event = make_event()
    del event[missing]

    error = refusal(body_of(event))

    assert error.fields[missing] == ["Missing data for required field."]
    assert missing in json.dumps(error.to_json())


def test_data_without_object(make_event: EventFactory) -> None:
    error = refusal(body_of(make_event(data={"previous_attributes": {}})))

    assert "object" in error.fields["data"]


@pytest.mark.parametrize("wrong", ["v2.core.event", "Event", "checkout.session", ""])
def test_wrong_object(make_event: EventFactory, wrong: str) -> None:
    assert "object" in refusal(body_of(make_event(object=wrong))).fields


@pytest.mark.parametrize("event_id", ["cs_1", "evt_", "EVT_1", "evt_1;drop", "evt 1", "x" * 10, "evt_" + "a" * 251, 7])
def test_event_id_must_be_an_evt_id(make_event: EventFactory, event_id: Any) -> None:
    assert "id" in refusal(body_of(make_event(event_id="evt_placeholder") | {"id": event_id})).fields


@pytest.mark.parametrize(("field", "value"), [
    ("created", "1700000000"), ("created", -1), ("created", 1.5),
    ("livemode", "maybe"), ("livemode", None), ("type", ""), ("type", 5), ("data", {"object": "cs_1"}), ("data", []),
])
def test_wrongly_typed_fields(make_event: EventFactory, field: str, value: Any) -> None:
    assert field in refusal(body_of(make_event(**{field: value}))).fields


@pytest.mark.parametrize("session", [
    {"id": "cs_1"},  # no object
    {"id": "pi_1", "object": "checkout.session"},
    {"id": 12, "object": "checkout.session"},
    {"object": "checkout.session"},
    {"id": "cs_1", "object": "payment_intent"},
    {"id": "cs_" + "a" * 253, "object": "checkout.session"},
])
def test_handled_type_without_a_checkout_session(make_event: EventFactory, session: dict[str, Any]) -> None:
    error = refusal(body_of(make_event(type="checkout.session.completed", data={"object": session})))

    assert "data.object" in error.fields
    assert "cs_" in json.dumps(error.to_json())
