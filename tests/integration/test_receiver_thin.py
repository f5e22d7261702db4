"""Thin event notifications at the receiver, on a real Redis: the same verification, livemode gate and
inbox as snapshot events, and a thin notification and its snapshot twin queued once between them."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from fulfillment.events import THIN_HANDLED_TYPES
from fulfillment.inbox import Inbox
from messaging.contract import EVENTS_QUEUE
from webhooks.settings import ReceiverSettings, load_receiver_settings

pytestmark = pytest.mark.integration

SignedPost = Callable[..., TestResponse]
DESTINATION_SECRET = "whsec_thin_destination_own_secret"  #: the thin destination's, beside the endpoint's


@pytest.fixture
def receiver(secret: str) -> ReceiverSettings:
    """A receiver in test mode (CROSSFILL_LIVEMODE=false): live notifications are the other mode. It
    verifies with the endpoint's secret and the thin destination's own."""
    return load_receiver_settings({"STRIPE_WEBHOOK_SECRET": f"{secret},{DESTINATION_SECRET}",
                                   "CROSSFILL_LIVEMODE": "false"})


def thin(*, type: str = "v1.checkout.session.completed", session_id: str | None = None,
         snapshot_event: str | None = None, **fields: Any) -> dict[str, Any]:
    """A thin notification as an event destination sends it."""
    session_id = session_id or f"cs_test_{uuid.uuid4().hex}"
    notification: dict[str, Any] = {
        "id": f"evt_test_{uuid.uuid4().hex}", "object": "v2.core.event", "type": type,
        "created": "2026-12-04T10:00:00.123Z", "livemode": False,
        "related_object": {"id": session_id, "type": "checkout_session",
                           "url": f"/v1/checkout/sessions/{session_id}"},
        "reason": {"type": "request", "request": {"id": "req_1", "idempotency_key": None}},
    }
    if snapshot_event:
        notification["snapshot_event"] = snapshot_event
    notification.update(fields)
    return notification


@pytest.mark.parametrize("event_type", THIN_HANDLED_TYPES)
def test_each_handled_thin_type_is_recorded_and_enqueued(signed_post: SignedPost, redis_client: redis.Redis,
                                                         event_type: str) -> None:
    notification = thin(type=event_type, context="acct_1Shop")

    response = signed_post(event=notification)

    assert response.status_code == 200 and response.get_json() == {"received": True}
    recorded = Inbox(redis_client).get(notification["id"])
    assert recorded is not None
    assert (recorded.type, recorded.session_id, recorded.account, recorded.status) == (
        event_type, notification["related_object"]["id"], "acct_1Shop", "enqueued")
    assert recorded.livemode is False
    assert redis_client.llen(EVENTS_QUEUE) == 1


def test_a_redelivered_thin_notification_is_a_duplicate(signed_post: SignedPost, redis_client: redis.Redis) -> None:
    notification = thin()

    first, second = signed_post(event=notification), signed_post(event=notification)

    assert first.get_json() == {"received": True}
    assert second.get_json() == {"received": True, "duplicate": True}
    assert redis_client.llen(EVENTS_QUEUE) == 1


@pytest.mark.parametrize("thin_first", [True, False])
def test_a_thin_notification_and_its_snapshot_twin_are_queued_once(
        thin_first: bool, signed_post: SignedPost, make_event: Callable[..., dict[str, Any]],
        redis_client: redis.Redis) -> None:
    snapshot = make_event(type="checkout.session.completed")
    notification = thin(session_id=snapshot["data"]["object"]["id"], snapshot_event=snapshot["id"])
    first, second = (notification, snapshot) if thin_first else (snapshot, notification)

    answers = [signed_post(event=first).get_json(), signed_post(event=second).get_json()]

    assert answers == [{"received": True}, {"received": True, "duplicate": True, "twin": first["id"]}]
    assert redis_client.llen(EVENTS_QUEUE) == 1
    twin = Inbox(redis_client).get(second["id"])
    assert twin is not None and (twin.status, twin.reason, twin.twin) == ("ignored", "twin", first["id"])
    assert signed_post(event=second).get_json() == {"received": True, "duplicate": True}


def test_other_thin_types_are_acknowledged_and_ignored(signed_post: SignedPost, redis_client: redis.Redis) -> None:
    ping = thin(type="v2.core.event_destination.ping",
                related_object={"id": "ed_1", "type": "v2.core.event_destination", "url": "/v2/core/x"})
    meter = thin(type="v1.billing.meter.error_report_triggered", related_object=None)

    answers = [signed_post(event=ping), signed_post(event=meter)]

    assert [a.get_json() for a in answers] == [{"received": True, "ignored": True}] * 2
    assert Inbox(redis_client).get(ping["id"]).reason == "unhandled_type"  # type: ignore[union-attr]
    assert redis_client.llen(EVENTS_QUEUE) == 0


def test_a_thin_notification_of_the_other_mode_is_ignored(signed_post: SignedPost, redis_client: redis.Redis) -> None:
    notification = thin(livemode=True)

    response = signed_post(event=notification)

    assert response.get_json() == {"received": True, "ignored": True, "reason": "livemode_mismatch"}
    assert redis_client.llen(EVENTS_QUEUE) == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"created": 1_700_000_000}, "created"),  # v2 timestamps are RFC 3339 strings
    ({"created": "yesterday"}, "created"),
    ({"related_object": {"id": "pi_1", "type": "payment_intent", "url": "/v1/payment_intents/pi_1"}},
     "related_object"),
    ({"related_object": None}, "related_object"),
    ({"context": "not an account"}, "context"),
    ({"snapshot_event": "nope"}, "snapshot_event"),
    ({"id": "v2evt_1"}, "id"),
])
def test_a_malformed_thin_notification_is_400_with_its_field(signed_post: SignedPost, redis_client: redis.Redis,
                                                             change: dict[str, Any], field: str) -> None:
    response = signed_post(event=thin(**change))

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["type"] == "invalid_payload" and field in error["fields"]
    assert redis_client.llen(EVENTS_QUEUE) == 0


def test_a_thin_notification_signed_with_an_unknown_secret_is_refused(signed_post: SignedPost,
                                                                      redis_client: redis.Redis) -> None:
    response = signed_post(event=thin(), secrets=("whsec_someone_elses",))

    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "signature_verification"
    assert redis_client.llen(EVENTS_QUEUE) == 0


def test_a_destinations_secret_is_one_more_entry_of_the_secrets(signed_post: SignedPost) -> None:
    response = signed_post(event=thin(), secrets=(DESTINATION_SECRET,))

    assert response.status_code == 200 and response.get_json() == {"received": True}


def test_metrics_count_thin_notifications_under_their_snapshot_type(signed_post: SignedPost,
                                                                    metrics_client: FlaskClient) -> None:
    signed_post(event=thin())

    metrics = metrics_client.get("/metrics").get_data(as_text=True)

    assert 'crossfill_webhooks_total{outcome="accepted",type="checkout.session.completed"} 1.0' in metrics
