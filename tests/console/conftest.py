"""Console fixtures, chained as Flask's are: ``redis → settings → console settings → app → client``.

The console runs against a real redis-server (replays queue through messaging.dispatch); every
test starts from an empty Redis. ``as_role(role)`` gives the Bearer headers of a configured token,
``browser(role)`` a test client signed in through the real sign-in form.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from console.app import create_console_app
from console.settings import ConsoleSettings, load_console_settings
from fulfillment.ledger import Ledger
from fulfillment.settings import Settings, load_settings
from tests.support.console import CATALOG, TOKENS, csrf_of, token_entries
from tests.support.processes import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("console-redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Settings:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    return load_settings({"CROSSFILL_REDIS_URL": redis_server.url, "CROSSFILL_DATA_DIR": str(tmp_path / "var"),
                          "CROSSFILL_CATALOG": str(catalog), "STRIPE_API_KEY": "sk_test_console",
                          "STRIPE_API_BASE": "http://127.0.0.1:9"})


@pytest.fixture
def console_settings() -> ConsoleSettings:
    return load_console_settings({"CROSSFILL_CONSOLE_TOKENS": token_entries()})


@pytest.fixture
def app(settings: Settings, console_settings: ConsoleSettings) -> Iterator[Flask]:
    application = create_console_app(settings, console_settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["crossfill_console"].service.runtime.close()


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., Flask]]:
    """Build consoles on this test's Redis with their own console environment (closed at teardown)."""
    made: list[Flask] = []

    def build(**env: str) -> Flask:
        made.append(create_console_app(settings, load_console_settings(
            {"CROSSFILL_CONSOLE_TOKENS": token_entries(), **env})))
        return made[-1]

    yield build
    for application in made:
        application.extensions["crossfill_console"].service.runtime.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def as_role() -> Callable[[str], dict[str, str]]:
    def headers(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[role]}"}

    return headers


@pytest.fixture
def browser(app: Flask) -> Callable[[str], FlaskClient]:
    """A client signed in as *role* through the sign-in form."""

    def sign_in(role: str) -> FlaskClient:
        session = app.test_client()
        form = session.get("/signin")
        answer = session.post("/signin", data={"token": TOKENS[role], "csrf": csrf_of(form.text)})
        assert answer.status_code == 302, answer.text
        return session

    return sign_in


@pytest.fixture
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(redis_client)
