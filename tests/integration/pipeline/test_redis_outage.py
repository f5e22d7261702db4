"""Redis going down under a running pipeline: nothing acknowledged is lost, and work resumes by itself."""
from __future__ import annotations

import time

import pytest

from tests.support.processes import port_open
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def test_the_pipeline_survives_a_redis_restart(fresh: Stack) -> None:
    # Given an order fulfilled before the outage
    before = fresh.shop.buy(cross_sell=True)
    fresh.wait_order(before, "fulfilled")

    # When Redis stops (SIGTERM: it writes its append-only file) while the receiver and worker run
    fresh.redis.stop()
    assert not port_open(fresh.redis.port)
    during = fresh.shop.buy()  # the simulator's webhook gets 503s and keeps retrying
    time.sleep(2)

    # And comes back on the same port
    fresh.redis.restart()

    # Then the order from before is still there, and the one paid during the outage is fulfilled
    # once the sender's retry gets through and the worker has reconnected
    assert (fresh.order(before) or {}).get("status") == "fulfilled"
    fresh.wait_order(during, "fulfilled", timeout=60)
    (completed,) = [e for e in fresh.shop.events_of(during) if e["type"] == "checkout.session.completed"]
    deliveries = fresh.sim.get(f"/sim/events/{completed['id']}/deliveries")["data"]
    codes = [attempt["status_code"] for delivery in deliveries for attempt in delivery["attempts"]]
    assert 503 in codes and codes[-1] == 200, codes  # refused while Redis was down, then accepted
    assert [fresh.target.calls[key] for key in fresh.keys_of(during)] == [1]
    assert fresh.procs["worker"].alive()  # the same worker reconnected; nobody restarted it
