"""The event envelope: what a verified body must look like before anything is recorded."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulfillment.events import HANDLED_TYPES
from webhooks.envelope import ACCOUNT_ID, EVENT_ID, EVENT_TYPE, parse_event
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
    assert set(HANDLED_TYPES) == {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    }


def test_unknown_top_level_fields_are_excluded(make_event: EventFactory) -> None:
    event = make_event(request={"id": "req_1"}, surprise=[1, 2, 3])

    parsed = parse_event(body_of(event))

    assert set(parsed) == {"id", "object", "type", "created", "livemode", "data", "account"}
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


# --- hostile input: everything parse_event lets through can be stored and shown as UTF-8 -----------

def escaped(event: dict[str, Any], placeholder: str, escape: str) -> bytes:
    """*event* as JSON with *placeholder* replaced by a raw JSON escape such as ``\\udfff``."""
    return body_of(event).replace(placeholder.encode(), escape.encode())


LONE_SURROGATES = ["\\udfff", "\\ud800", "\\uDBFF", "\\ud83d", "\\ude00\\ud83d", "x\\udc80y"]


@pytest.mark.parametrize("escape", LONE_SURROGATES)
@pytest.mark.parametrize("where", ["type", "id", "session", "nested value", "key", "ignored type's object"])
def test_a_lone_surrogate_anywhere_is_refused(make_event: EventFactory, where: str, escape: str) -> None:
    mark = "PLACEHOLDER"
    event = {
        "type": make_event(type=f"checkout.session.{mark}"),
        "id": make_event(event_id=f"evt_{mark}"),
        "session": make_event(session_id=f"cs_test_{mark}"),
        "nested value": make_event(data={"object": {"id": "cs_1", "object": "checkout.session",
                                                    "metadata": {"note": [1, {"deep": mark}]}}}),
        "key": make_event(data={"object": {"id": "cs_1", "object": "checkout.session", mark: 1}}),
        "ignored type's object": make_event(type="invoice.paid", data={"object": {"id": "in_1", "memo": mark}}),
    }[where]

    error = refusal(escaped(event, mark, escape))

    assert "surrogate" in str(error)
    json.dumps(error.to_json(), ensure_ascii=False).encode("utf-8")  # the answer itself is clean UTF-8


@pytest.mark.parametrize("escape", ["\\ud83d\\ude00", "\\uD83D\\uDE00", "\\u00e9", "\\\\udfff", "\\ufffd"])
def test_paired_surrogates_and_other_escapes_are_text(make_event: EventFactory, escape: str) -> None:
    event = make_event(data={"object": {"id": "cs_1", "object": "checkout.session", "metadata": {"note": "X"}}})

    parsed = parse_event(escaped(event, '"X"', f'"{escape}"'))

    note = parsed["data"]["object"]["metadata"]["note"]
    note.encode("utf-8")
    assert note == json.loads(f'"{escape}"')


@pytest.mark.parametrize("body", [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf", b"\xf5\x80\x80\x80", b"\xe2\x82",
                                  b"\x80"])
def test_invalid_utf8_in_a_string_is_refused(make_event: EventFactory, body: bytes) -> None:
    raw = body_of(make_event(data={"object": {"id": "cs_1", "object": "checkout.session", "name": "X"}}))

    error = refusal(raw.replace(b'"X"', b'"' + body + b'"'))

    assert "not valid UTF-8" in str(error) and "byte " in str(error)


@pytest.mark.parametrize("body", [
    b'{"id": "evt_1", "id": "evt_2", "object": "event"}',
    b'{"id": "evt_1", "data": {"object": {"id": "cs_1", "id": "cs_2"}}}',
])
def test_duplicate_keys_are_refused(body: bytes) -> None:
    assert "appears twice" in str(refusal(body))


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_refused(make_event: EventFactory, constant: bytes) -> None:
    raw = body_of(make_event(created=123456)).replace(b"123456", constant)

    assert "not a JSON value" in str(refusal(raw))


@pytest.mark.parametrize("event_id", ["evt_1\n", "evt_1\r\n", "evt_1\x00", "evt_1\u2603", "evt_1.2", "evt_1*",
                                      "evt_1:{x}"])
def test_event_ids_are_letters_digits_and_underscores_only(make_event: EventFactory, event_id: str) -> None:
    assert "id" in refusal(body_of(make_event(event_id=event_id))).fields


@pytest.mark.parametrize("event_type", [
    "Checkout.session.completed", "checkout session", "checkout.session.completed\n", "checkout..session",
    ".checkout", "checkout.", "checkout.session.completed\x00", "caf\u00e9.paid", "a" * 101,
    "a." * 10 + "a", "*", "checkout.session.*",
])
def test_event_types_are_dotted_lowercase_words(make_event: EventFactory, event_type: str) -> None:
    error = refusal(body_of(make_event(type=event_type, data={"object": {"id": "x_1"}})))

    assert "type" in error.fields


@pytest.mark.parametrize("event_type", ["invoice.paid", "v1.billing.meter.no_meter_found", "account.updated",
                                        "test_helpers.test_clock.ready", "a" * 100, "a." * 9 + "a"])
def test_real_shapes_of_unhandled_types_are_accepted(make_event: EventFactory, event_type: str) -> None:
    assert parse_event(body_of(make_event(type=event_type, data={"object": {"id": "x_1"}})))["type"] == event_type


@pytest.mark.parametrize("session_id", ["cs_test_1\n", "cs_1 2", "cs_1/../x", "cs_", "cs_\u00e91", "cs_1}"])
def test_session_ids_are_letters_digits_and_underscores_only(make_event: EventFactory, session_id: str) -> None:
    assert "data.object" in refusal(body_of(make_event(session_id=session_id))).fields


@pytest.mark.parametrize(("given", "parsed"), [({}, None), ({"account": None}, None),
                                                ({"account": "acct_1Shop"}, "acct_1Shop")])
def test_a_connect_event_carries_its_account(make_event: EventFactory, given: dict[str, Any],
                                             parsed: str | None) -> None:
    assert parse_event(body_of(make_event(**given)))["account"] == parsed


@pytest.mark.parametrize("account", ["acct_1\n", "acct_", "acct_1 2", "acct_1:x", "cus_1", "", 7, ["acct_1"],
                                     "acct_" + "a" * 251, "acct_\u00e9"])
def test_account_ids_are_letters_digits_and_underscores_only(make_event: EventFactory, account: Any) -> None:
    assert "account" in refusal(body_of(make_event(account=account))).fields


@pytest.mark.parametrize("created", [2**53 + 1, 10**30])
def test_created_is_bounded(make_event: EventFactory, created: int) -> None:
    assert "created" in refusal(body_of(make_event(created=created))).fields


def test_huge_numbers_are_refused_not_crashed(make_event: EventFactory) -> None:
    raw = body_of(make_event(created=123456)).replace(b"123456", b"9" * 100_000)

    refusal(raw)


#: Any code point, lone surrogates included (hypothesis leaves category Cs out unless asked for it).
any_char = st.characters() | st.characters(categories=["Cs"]) | st.sampled_from("._evtcs_abc0")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(any_char, max_size=20) | st.sampled_from(["evt_1", "cs_1", "checkout.session.completed", "a.b"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(any_char, max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=json_values, where=st.sampled_from(["id", "type", "session", "metadata", "account"]))
def test_property_whatever_is_accepted_is_utf8_and_bounded(make_event: EventFactory, value: Any, where: str) -> None:
    # Given an event with an arbitrary JSON value (any code point, lone surrogates included) in one place
    event = make_event(data={"object": {"id": "cs_1", "object": "checkout.session", "metadata": {}}})
    if where == "session":
        event["data"]["object"]["id"] = value
    elif where == "metadata":
        event["data"]["object"]["metadata"] = value
    else:
        event[where] = value
    body = json.dumps(event).encode("utf-8")  # ensure_ascii: surrogates travel as \\u escapes

    # When it is parsed, it is either refused with InvalidPayload or accepted as clean, bounded data
    try:
        parsed = parse_event(body)
    except InvalidPayload as error:
        json.dumps(error.to_json(), ensure_ascii=False).encode("utf-8")
        return
    json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    assert EVENT_ID.match(parsed["id"]) and EVENT_TYPE.match(parsed["type"]) and len(parsed["type"]) <= 100
    assert parsed["account"] is None or ACCOUNT_ID.match(parsed["account"])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=300), cut=st.integers(0, 1000))
def test_property_random_and_truncated_bodies_are_refused_cleanly(make_event: EventFactory, raw: bytes,
                                                                  cut: int) -> None:
    for body in (raw, body_of(make_event())[:cut], body_of(make_event())[:cut] + raw):
        try:
            parse_event(body)
        except InvalidPayload:
            pass
