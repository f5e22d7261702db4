"""Replaying an event recorded as ignored is refused and queues nothing, on the real receiver, CLI and
console: ``crossfill replay-event`` exits 1, ``POST /api/v1/events/{id}/replay`` answers 409, and the
ignored record keeps the session id it named."""
from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from console.app import create_console_app
from console.settings import load_console_settings
from fulfillment.inbox import Inbox
from fulfillment.settings import load_settings
from tests.support.console import TOKENS
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def event(event_type: str, *, livemode: bool, session_id: str) -> dict[str, Any]:
    return {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": event_type, "created": int(time.time()),
            "livemode": livemode, "api_version": "2026-10-28.endive",
            "data": {"object": {"id": session_id, "object": "checkout.session"}}}


def test_an_ignored_event_is_never_replayed(fresh: Stack) -> None:  # noqa: F811
    # Given two events the receiver recorded as ignored: a live event (the stack runs a test key: the
    # other mode) of a handled type, and a type crossfill does not handle
    other_mode = event("checkout.session.completed", livemode=True, session_id=f"cs_test_{uuid.uuid4().hex[:12]}")
    unhandled = event("invoice.paid", livemode=False, session_id=f"cs_test_{uuid.uuid4().hex[:12]}")
    inbox = Inbox(fresh.redis.client())
    for sent in (other_mode, unhandled):
        answer = fresh.post_event(sent)
        assert answer.status_code == 200 and answer.json()["ignored"] is True
    before = {sent["id"]: inbox.get(sent["id"]) for sent in (other_mode, unhandled)}
    # the record keeps the session id a handled type names
    assert before[other_mode["id"]].session_id == other_mode["data"]["object"]["id"]  # type: ignore[union-attr]
    assert before[unhandled["id"]].session_id == ""  # type: ignore[union-attr]

    app = create_console_app(load_settings(fresh.env), load_console_settings(
        {"CROSSFILL_CONSOLE_TOKENS": f"op:operator:{TOKENS['operator']}"}))
    try:
        for sent in (other_mode, unhandled):
            # When an operator replays it from the CLI and from the console's API
            cli = fresh.cli("replay-event", sent["id"])
            api = app.test_client().post(f"/api/v1/events/{sent['id']}/replay",
                                         headers={"Authorization": f"Bearer {TOKENS['operator']}"})

            # Then both refuse, and nothing was queued: the record is as it was and no order exists
            assert cli.returncode == 1, cli.stdout + cli.stderr
            assert "ignored" in cli.stderr
            assert api.status_code == 409 and api.json["error"]["type"] == "conflict"
            was, now = before[sent["id"]], inbox.get(sent["id"])
            assert was is not None and now is not None
            assert (now.status, now.session_id, now.deliveries) == ("ignored", was.session_id, was.deliveries)
            assert fresh.redis.client().llen("events") == 0
            assert fresh.order(sent["data"]["object"]["id"]) is None
    finally:
        app.extensions["crossfill_console"].service.runtime.close()
