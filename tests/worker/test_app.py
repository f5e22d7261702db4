"""The Celery app's Redis: a sentinel:// URL puts the broker and the result backend on Sentinel."""
from __future__ import annotations

from celery.backends.redis import RedisBackend, SentinelBackend

from fulfillment.settings import load_settings
from worker.app import make_celery

SENTINELS = "sentinel://127.0.0.1:1;sentinel://127.0.0.1:2"


def test_under_sentinel_broker_and_results_ask_the_sentinels_for_the_named_master() -> None:
    app = make_celery(load_settings({"CROSSFILL_REDIS_URL": SENTINELS, "CROSSFILL_REDIS_SENTINEL_MASTER": "orders"}))

    # No connection is made to build them: the sentinels are asked on first use
    assert app.conf.broker_url == SENTINELS
    assert app.conf.broker_transport_options["master_name"] == "orders"
    assert app.conf.result_backend_transport_options == {"master_name": "orders"}
    assert isinstance(app.backend, SentinelBackend)
    connection = app.connection_for_write()
    assert type(connection.transport).__name__ == "SentinelTransport"  # kombu's, over every sentinel
    assert connection.alt == SENTINELS.split(";")


def test_a_single_redis_needs_no_master_name() -> None:
    app = make_celery(load_settings({"CROSSFILL_REDIS_URL": "redis://127.0.0.1:1/0"}))

    assert "master_name" not in app.conf.broker_transport_options
    assert type(app.backend) is RedisBackend
