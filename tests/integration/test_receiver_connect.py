"""Connect events through the receiver on a real redis-server: the event's account reaches the inbox, for
the worker to read the session as that account."""
from __future__ import annotations

from typing import Any

import redis
from flask import Flask

from fulfillment.inbox import Inbox
from tests.support.receiver import SignedPost


def test_a_connect_events_account_is_recorded_with_it(signed_post: SignedPost, app: Flask,
                                                       redis_client: redis.Redis) -> None:
    response = signed_post(event_id="evt_connect_1", account="acct_1Shop")
    assert response.status_code == 200, response.get_json()
    event = Inbox(redis_client).get("evt_connect_1")
    assert event is not None and event.account == "acct_1Shop"


def test_a_platform_event_has_no_account(signed_post: SignedPost, app: Flask, redis_client: redis.Redis) -> None:
    assert signed_post(event_id="evt_own_1").status_code == 200
    event = Inbox(redis_client).get("evt_own_1")
    assert event is not None and event.account is None
    assert redis_client.hget("crossfill:event:evt_own_1", "account") is None


def test_an_account_that_is_not_an_account_id_is_a_400(signed_post: SignedPost, app: Flask,
                                                        redis_client: redis.Redis) -> None:
    response = signed_post(event_id="evt_bad_1", account="shop; DROP")
    body: dict[str, Any] = response.get_json()
    assert response.status_code == 400
    assert "account" in str(body)
    assert Inbox(redis_client).get("evt_bad_1") is None
