"""Live or test: the mode of a key, the configured mode, and which events do not belong to it."""
from __future__ import annotations

import json

import pytest

from fulfillment.errors import ConfigError
from fulfillment.inbox import Inbox
from fulfillment.livemode import MISMATCH, configured_livemode, is_mismatch, key_livemode
from fulfillment.pipeline import ignore_other_mode
from fulfillment.records import livemode_of
from fulfillment.settings import load_settings
from fulfillment.stats import LIVEMODE_MISMATCH, Stats
from tests.support.fulfillment_fixtures import fake_redis


@pytest.mark.parametrize(("key", "mode"), [
    ("sk_live_51abc", True), ("rk_live_51abc", True), ("sk_test_51abc", False), ("rk_test_51abc", False),
    ("", None), (None, None), ("pk_live_51abc", None), ("sk_sim_local", None), ("whsec_x", None),
])
def test_the_mode_of_a_key_is_its_prefix(key: str | None, mode: bool | None) -> None:
    assert key_livemode(key) is mode


@pytest.mark.parametrize(("key", "explicit", "mode"), [
    ("sk_live_1", None, True), ("rk_test_1", "", False), (None, None, None),
    (None, "true", True), (None, "live", True), (None, "false", False), (None, " Test ", False),
    ("sk_live_1", "true", True), ("rk_test_1", "0", False), ("sk_sim_local", "yes", True),
])
def test_the_configured_mode(key: str | None, explicit: str | None, mode: bool | None) -> None:
    assert configured_livemode(key, explicit) is mode


def test_a_mode_that_contradicts_the_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CROSSFILL_LIVEMODE='false'.*STRIPE_API_KEY is a live key") as caught:
        configured_livemode("rk_live_secretsecret", "false")

    assert "secretsecret" not in str(caught.value)


def test_a_mode_that_is_no_boolean_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="use true .* or false"):
        configured_livemode(None, "production")


@pytest.mark.parametrize(("event", "mode", "mismatch"), [
    (False, True, True), (True, False, True), (True, True, False), (False, False, False),
    (False, None, False), (True, None, False), (None, True, False), ("false", True, False),
])
def test_is_mismatch(event: object, mode: bool | None, mismatch: bool) -> None:
    assert is_mismatch(event, mode) is mismatch


# --- the inbox keeps why an event was ignored -----------------------------------------------------------

def test_an_event_ignored_for_its_mode_is_recorded_with_the_reason() -> None:
    inbox = Inbox(fake_redis())

    inbox.record_ignored("evt_1", "checkout.session.completed", reason=MISMATCH)
    inbox.record_ignored("evt_2", "plan.created")

    first, second = inbox.get("evt_1"), inbox.get("evt_2")
    assert first is not None and (first.status, first.reason) == ("ignored", "livemode_mismatch")
    assert second is not None and (second.status, second.reason) == ("ignored", "unhandled_type")
    assert inbox.counts()["ignored"] == 2


def test_the_worker_can_ignore_a_recorded_event_with_a_reason() -> None:
    inbox = Inbox(fake_redis())
    body = json.dumps({"id": "evt_1", "livemode": True})
    inbox.record("evt_1", "checkout.session.completed", "cs_1", body, queue="events", message="m")

    assert inbox.ignore("evt_1", MISMATCH) == "enqueued"

    event = inbox.get("evt_1")
    assert event is not None and (event.status, event.reason, event.livemode) == ("ignored", MISMATCH, True)
    assert (inbox.counts()["ignored"], inbox.counts()["enqueued"]) == (1, 0)
    assert inbox.ignore("evt_unknown", MISMATCH) is None


@pytest.mark.parametrize(("body", "livemode"), [
    ('{"livemode": false}', False), ('{"livemode": true}', True), ('{"livemode": "true"}', None),
    ("{}", None), ("", None), ("not json", None), ("[1]", None),
])
def test_an_event_body_says_its_livemode_only_as_a_boolean(body: str, livemode: bool | None) -> None:
    assert livemode_of(body) is livemode


@pytest.mark.parametrize(("body", "livemode"), [('{"livemode": false}', False), ('{"livemode": true}', True),
                                                ("{}", None)])
def test_the_inbox_keeps_an_events_livemode_as_a_field(body: str, livemode: bool | None) -> None:
    client = fake_redis()
    inbox = Inbox(client)
    inbox.record("evt_1", "checkout.session.completed", "cs_1", body, queue="events", message="m")
    # The stored body is no longer read for it: a body rewritten afterwards does not change it.
    client.hset("crossfill:event:evt_1", "body", '{"livemode": "rewritten"}')

    event = inbox.get("evt_1")
    assert event is not None and event.livemode is livemode


def test_an_event_recorded_before_the_livemode_field_reads_it_from_its_body() -> None:
    client = fake_redis()
    inbox = Inbox(client)
    inbox.record("evt_1", "checkout.session.completed", "cs_1", '{"livemode": true}', queue="events", message="m")
    client.hdel("crossfill:event:evt_1", "livemode")

    event = inbox.get("evt_1")
    assert event is not None and event.livemode is True


def test_a_livemode_given_to_record_wins_over_the_body() -> None:
    inbox = Inbox(fake_redis())
    inbox.record("evt_1", "checkout.session.completed", "cs_1", "{}", queue="events", message="m", livemode=False)

    event = inbox.get("evt_1")
    assert event is not None and event.livemode is False


# --- the worker's gate, behind the receiver's ---------------------------------------------------------------

@pytest.mark.parametrize(("event_livemode", "mode", "ignored"), [
    (True, False, True), (False, True, True), (False, False, False), (True, None, False)])
def test_the_worker_ignores_an_event_of_the_other_mode(event_livemode: bool, mode: bool | None,
                                                       ignored: bool) -> None:
    client = fake_redis()
    inbox, stats = Inbox(client), Stats(client)
    inbox.record("evt_1", "checkout.session.completed", "cs_1", json.dumps({"livemode": event_livemode}),
                 queue="events", message="m")
    event = inbox.get("evt_1")
    assert event is not None

    assert ignore_other_mode(event, mode, inbox, stats) is ignored

    after = inbox.get("evt_1")
    assert after is not None
    assert (after.status, after.reason) == (("ignored", MISMATCH) if ignored else ("enqueued", ""))
    assert stats.read(LIVEMODE_MISMATCH) == ({"worker": 1} if ignored else {})


def test_the_worker_settings_take_the_keys_mode() -> None:
    assert load_settings({"STRIPE_API_KEY": "rk_live_x"}).stripe.livemode is True
    assert load_settings({"STRIPE_API_KEY": "sk_test_x"}).stripe.livemode is False
    assert load_settings({"CROSSFILL_LIVEMODE": "false"}).stripe.livemode is False
    assert load_settings({}).stripe.livemode is None
    with pytest.raises(ConfigError, match="CROSSFILL_LIVEMODE"):
        load_settings({"STRIPE_API_KEY": "rk_live_x", "CROSSFILL_LIVEMODE": "test"})
