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
from tests.console.conftest import TOKENS
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def event(event_type: str, *, livemode: bool, session_id: str) -> dict[str, Any]:
    return {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": event_type, "created": int(time.time()),
            "livemode": livemode, "api_version": "2026-10-28.endive",
            "data": {"object": {"id": session_id, "object": "checkout.session"}}}


@pytest.mark.parametrize(("event_type", "livemode", "kept_session"), [
    ("checkout.session.completed", True, True),  # the stack runs a test key: a live event is the other mode
    ("invoice.paid", False, False),  # a type crossfill does not handle
])
def test_an_ignored_event_is_never_replayed(fresh: Stack, event_type: str, livemode: bool,  # noqa: F811
                                            kept_session: bool) -> None:
    # Given an event the receiver recorded as ignored
    session_id = f"cs_test_{uuid.uuid4().hex[:12]}"
    sent = event(event_type, livemode=livemode, session_id=session_id)
    answer = fresh.post_event(sent)
    assert answer.status_code == 200 and answer.json()["ignored"] is True
    inbox = Inbox(fresh.redis.client())
    before = inbox.get(sent["id"])
    assert before is not None and before.status == "ignored"
    assert before.session_id == (session_id if kept_session else "")

    # When an operator replays it from the CLI and from the console's API
    cli = fresh.cli("replay-event", sent["id"])
    app = create_console_app(load_settings(fresh.env), load_console_settings(
        {"CROSSFILL_CONSOLE_TOKENS": f"op:operator:{TOKENS['operator']}"}))
    try:
        api = app.test_client().post(f"/api/v1/events/{sent['id']}/replay",
                                     headers={"Authorization": f"Bearer {TOKENS['operator']}"})
    finally:
        app.extensions["crossfill_console"].service.runtime.close()

    # Then both refuse, and nothing was queued: the record is as it was and no order exists
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "ignored" in cli.stderr
    assert api.status_code == 409 and api.json["error"]["type"] == "conflict"
    after = inbox.get(sent["id"])
    assert after is not None
    assert (after.status, after.session_id, after.deliveries) == ("ignored", before.session_id, before.deliveries)
    assert fresh.redis.client().llen("events") == 0
    assert fresh.order(session_id) is None
