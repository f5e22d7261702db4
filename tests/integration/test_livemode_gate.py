"""The receiver's livemode gate on a real Redis: an event of the other mode is acknowledged and ignored.

Stripe sends test-mode events of connected accounts to a live Connect endpoint too; crossfill runs in
its API key's mode (a restricted rk_ key like a secret sk_ one) or CROSSFILL_LIVEMODE's.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from fulfillment.errors import ConfigError
from fulfillment.inbox import Inbox
from fulfillment.livemode import MISMATCH
from fulfillment.stats import LIVEMODE_MISMATCH, Stats
from messaging.contract import EVENTS_QUEUE
from tests.support.receiver import SignedPost
from webhooks.settings import ReceiverSettings, load_receiver_settings

#: what each test's receiver is configured with (its STRIPE_API_KEY / CROSSFILL_LIVEMODE)
MODES = {"live key": {"STRIPE_API_KEY": "rk_live_51CrossfillRestrictedKey"},
         "test key": {"STRIPE_API_KEY": "sk_test_51CrossfillSecretKey"},
         "live setting": {"CROSSFILL_LIVEMODE": "true"},
         "no mode": {}}


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def receiver(secret: str, mode: str) -> ReceiverSettings:
    return load_receiver_settings({"STRIPE_WEBHOOK_SECRET": secret, **MODES[mode]})


@pytest.mark.parametrize("event_livemode", [True, False])
@pytest.mark.parametrize("event_type", ["checkout.session.completed", "plan.created"])
def test_an_event_is_acted_on_only_in_crossfills_mode(mode: str, event_livemode: bool, event_type: str,
                                                      signed_post: SignedPost, make_event: Callable[..., Any],
                                                      redis_client: redis.Redis, client: FlaskClient) -> None:
    # Given a receiver in MODES[mode], and an event of one mode or the other
    event = make_event(type=event_type, livemode=event_livemode)

    # When it is delivered
    response = signed_post(event=event)

    # Then it is acknowledged whatever its mode; recorded as ignored (livemode_mismatch) when not ours
    other_mode = {"live key": not event_livemode, "live setting": not event_livemode,
                  "test key": event_livemode, "no mode": False}[mode]
    assert response.status_code == 200
    recorded = Inbox(redis_client).get(event["id"])
    assert recorded is not None
    queued = redis_client.llen(EVENTS_QUEUE)
    counted = Stats(redis_client).read(LIVEMODE_MISMATCH)
    if other_mode:
        assert response.get_json() == {"received": True, "ignored": True, "reason": "livemode_mismatch"}
        assert (recorded.status, recorded.reason, queued, counted) == ("ignored", MISMATCH, 0, {"receiver": 1})
    else:
        handled = event_type == "checkout.session.completed"
        assert (recorded.status, recorded.reason, queued, counted) == (
            ("enqueued", "", 1, {}) if handled else ("ignored", "unhandled_type", 0, {}))
    metrics = client.get("/metrics").get_data(as_text=True)
    assert ('crossfill_livemode_mismatch_total{where="receiver"} 1.0' in metrics) is other_mode


def test_a_mode_that_contradicts_the_key_stops_the_receiver_at_start(secret: str) -> None:
    with pytest.raises(ConfigError, match="CROSSFILL_LIVEMODE"):
        load_receiver_settings({"STRIPE_WEBHOOK_SECRET": secret, "STRIPE_API_KEY": "sk_test_1",
                                "CROSSFILL_LIVEMODE": "true"})
